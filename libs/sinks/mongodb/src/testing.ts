// `@sluice/sinks-mongodb/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
export { createMongoTestDatabase, mongoTestUrl, type MongoTestDatabase } from './test-support';
