/** Local service URLs for integration tests (set by scripts/lib.sh; loopback defaults otherwise). */
export const testUrls = {
  nats: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222',
  redis: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
  postgres: process.env['PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  mongo: process.env['MONGO_URL'] ?? 'mongodb://127.0.0.1:27017',
  amqp: process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
  mqtt: process.env['MQTT_URL'] ?? 'mqtt://127.0.0.1:1883',
};
