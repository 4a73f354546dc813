"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.natsFixture = natsFixture;
const jetstream_1 = require("@nats-io/jetstream");
const transport_node_1 = require("@nats-io/transport-node");
const env_1 = require("./env");
async function natsFixture() {
    const nc = await (0, transport_node_1.connect)({ servers: env_1.testUrls.nats, name: 'sluice-test' });
    const jsm = await (0, jetstream_1.jetstreamManager)(nc);
    const js = (0, jetstream_1.jetstream)(nc);
    const streams = new Set();
    return {
        nc,
        js,
        jsm,
        track(stream) {
            streams.add(stream);
            return stream;
        },
        async readAll(stream, subject) {
            const info = await jsm.streams.info(stream);
            const total = subject ? (await jsm.streams.info(stream, { subjects_filter: subject })).state.subjects?.[subject] ?? 0 : info.state.messages;
            const out = [];
            if (info.state.messages === 0 || total === 0)
                return out;
            const consumer = await js.consumers.get(stream, subject ? { filter_subjects: [subject] } : {});
            const iter = await consumer.fetch({ max_messages: Math.max(total, 1), expires: 2_000 });
            for await (const m of iter) {
                out.push(m);
                if (out.length >= total)
                    break;
            }
            await iter.close();
            return out;
        },
        async cleanup() {
            for (const s of streams)
                await jsm.streams.delete(s).catch(() => undefined);
            await nc.drain().catch(() => undefined);
        },
    };
}
//# sourceMappingURL=nats.js.map