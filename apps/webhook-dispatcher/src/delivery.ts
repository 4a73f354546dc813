// One delivery = one (event, subscription) pair, carried as a JSON message on the deliveries stream.
import { z } from 'zod';
import { MalformedDeliveryError } from './errors';
import { EVENT_TYPES } from './names';

const deliverySchema = z.object({
  v: z.literal(1),
  webhookId: z.string().min(1).max(200),
  subscriptionId: z.string().uuid(),
  type: z.enum([EVENT_TYPES.threshold, EVENT_TYPES.windowClosed, EVENT_TYPES.detection, EVENT_TYPES.test]),
  /** The exact request body, fixed at match time. */
  body: z.string(),
  /** 0 for the original; +1 per DLQ redrive (attempts are counted per generation). */
  generation: z.number().int().min(0),
  createdAt: z.string(),
});
export type DeliveryMessage = z.infer<typeof deliverySchema>;

export const CONTENT_TYPE_DELIVERY = 'application/json; sluice=webhook-delivery.v1';

export function encodeDelivery(d: DeliveryMessage): Uint8Array {
  return Buffer.from(JSON.stringify(d));
}

/** Throws {@link MalformedDeliveryError}. */
export function decodeDelivery(bytes: Uint8Array): DeliveryMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new MalformedDeliveryError(`delivery is not JSON: ${(err as Error).message}`);
  }
  const r = deliverySchema.safeParse(raw);
  if (!r.success) throw new MalformedDeliveryError(`delivery does not match the format: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** `Nats-Msg-Id` of a delivery: the webhook-id for the original, suffixed per redrive. */
export function deliveryMsgId(d: Pick<DeliveryMessage, 'webhookId' | 'generation'>): string {
  return d.generation === 0 ? d.webhookId : `${d.webhookId}:g${d.generation}`;
}
