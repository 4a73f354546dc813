/* eslint-disable no-restricted-properties -- a stand-alone script reads its environment, as the scripts under tools/ do */
/**
 * Prints what the exporter publishes to a RabbitMQ exchange, live: a queue of its own (exclusive,
 * deleted when this stops) bound to the exchange with a routing-key pattern.
 *
 *   bash scripts/run.sh tsx examples/detection-export/amqp-tail.ts [exchange] [binding]
 *
 * Defaults: exchange `sluice.demo`, binding `#` (everything); AMQP_URL or amqp://guest:guest@127.0.0.1:5672.
 */
import { Connection, type AsyncMessage } from 'rabbitmq-client';

const [exchange = 'sluice.demo', binding = '#'] = process.argv.slice(2);
const conn = new Connection({
  url: process.env['AMQP_URL'] || 'amqp://guest:guest@127.0.0.1:5672',
  connectionTimeout: 5_000,
});
conn.on('error', (err) => console.error(`rabbitmq: ${err.message}`));
const queue = `sluice.tail.${process.pid}`;
const consumer = conn.createConsumer(
  {
    queue,
    queueOptions: { exclusive: true, autoDelete: true },
    exchanges: [{ exchange, type: 'topic', durable: true }],
    queueBindings: [{ queue, exchange, routingKey: binding }],
  },
  (m: AsyncMessage) => {
    // rabbitmq-client parses a JSON body; a protobuf one stays bytes.
    const body = Buffer.isBuffer(m.body)
      ? `<${m.body.length} bytes ${m.contentType}>`
      : JSON.stringify(m.body);
    console.log(`${m.routingKey}  message_id=${m.messageId}  ${body}`);
  },
);
consumer.on('error', (err) => console.error(`consumer: ${err.message}`));
consumer.once('ready', () =>
  console.error(`tailing exchange ${exchange} (binding ${binding}); Ctrl-C stops`),
);
process.once('SIGINT', () => void consumer.close().then(() => conn.close()));
