import { runService } from '@sluice/runtime';
import { config } from './config';
import { createService, SERVICE } from './service';

runService(SERVICE, config, createService);
