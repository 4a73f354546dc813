export * from './env';
export * from './names';
export * from './wait';
export * from './nats';
export * from './process';
export * from './postgres';
export * from './redis';
export * from './servers';
