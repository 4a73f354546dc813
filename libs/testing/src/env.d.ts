/** Local service URLs for integration tests (set by scripts/lib.sh; loopback defaults otherwise). */
export declare const testUrls: {
    nats: string;
    redis: string;
    postgres: string;
    mongo: string;
    amqp: string;
    mqtt: string;
};
