// A real service process for the runtime tests: every part prints when it starts and stops, so the
// test can check the order runService imposes. FAIL_AT=prepare|server|actor makes that part fail.
import { defineConfig, z } from '@sluice/config';
import { Lifecycle } from '../lifecycle';
import { runService, type ServedActor } from '../runtime';

const failAt = process.env['FAIL_AT'];
const say = (what: string): void => void process.stdout.write(`ORDER ${what}\n`);

class PrintingActor implements ServedActor {
  readonly lifecycle = new Lifecycle();
  constructor(private readonly name: string) {}
  get state() {
    return this.lifecycle.state;
  }
  isReady() {
    return this.lifecycle.state === 'running';
  }
  async start() {
    say(`start ${this.name}`);
    this.lifecycle.transition('running');
    if (failAt === 'actor')
      setTimeout(() => this.lifecycle.transition('failed', new Error('actor broke')), 200);
  }
  async stop() {
    say(`stop ${this.name}`);
    if (!this.lifecycle.terminal) {
      this.lifecycle.transition('draining');
      this.lifecycle.transition('stopped');
    }
  }
}

runService('ordered-test', defineConfig({ ORDERED_EXTRA: z.string().default('x') }), () => ({
  prepare: async () => {
    say('prepare');
    if (failAt === 'prepare') throw new Error('prepare broke');
  },
  servers: [
    {
      name: 'api',
      start: async () => {
        say('start api');
        if (failAt === 'server') throw new Error('server broke');
      },
      stop: async () => say('stop api'),
      describe: () => ({ apiPort: 1234 }),
    },
  ],
  actors: [new PrintingActor('actor')],
  background: [
    { name: 'timers', start: () => say('start timers'), stop: async () => say('stop timers') },
  ],
  close: [{ name: 'store', stop: async () => say('stop store') }],
  ready: { store: () => true },
}));
