// The SPSC ring between a DNS worker and the dnstap writer: whatever the
// frame sizes and however producing and draining interleave, the consumer
// gets exactly the frames that were not dropped, whole and in order, and a
// frame is dropped only when the ring has no room for it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RingConsumer, RingProducer, createRing, ringStats } from '../../../server/dnstap/ring.ts';

/** A frame as the producer writes it: 4-octet length, then `id` repeated. */
function writeFrame(out: Uint8Array, at: number, size: number, id: number): void {
  const payload = size - 4;
  out[at] = payload >>> 24;
  out[at + 1] = (payload >>> 16) & 0xff;
  out[at + 2] = (payload >>> 8) & 0xff;
  out[at + 3] = payload & 0xff;
  for (let i = 4; i < size; i++) out[at + i] = id & 0xff;
}

/** Splits drained octets back into frames. */
function framesIn(bytes: number[]): Array<{ size: number; id: number; whole: boolean }> {
  const frames = [];
  let at = 0;
  while (at < bytes.length) {
    const payload = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
    const body = bytes.slice(at + 4, at + 4 + payload);
    frames.push({ size: payload + 4, id: body[0], whole: body.length === payload && body.every((b) => b === body[0]) });
    at += 4 + payload;
  }
  return frames;
}

test('every frame that is not dropped comes out whole and in order; drops happen only when full', () => {
  fc.assert(fc.property(
    fc.integer({ min: 64, max: 600 }),
    fc.array(fc.oneof(fc.integer({ min: 5, max: 200 }).map((size) => ({ produce: size })), fc.integer({ min: 1, max: 400 }).map((limit) => ({ drain: limit }))), { maxLength: 300 }),
    (capacity, steps) => {
      const buffer = createRing(capacity);
      const producer = new RingProducer(buffer);
      const consumer = new RingConsumer(buffer);
      const expected: Array<{ size: number; id: number }> = [];
      const drained: number[] = [];
      const take = (data: Uint8Array, start: number, end: number): void => { for (let i = start; i < end; i++) drained.push(data[i]); };
      let id = 0;
      let dropped = 0;
      for (const step of steps) {
        if ('produce' in step) {
          const before = consumer.queued();
          const at = producer.reserve(step.produce);
          if (at < 0) {
            dropped++;
            // Frames never wrap, so the free octets are split in two at worst:
            // a drop means the frame was larger than half of what was free.
            const free = capacity - 1 - before;
            assert.ok(step.produce >= (free + 1) / 2, `dropped a ${step.produce}-octet frame with ${free} octets free`);
            continue;
          }
          id = (id + 1) & 0xff;
          writeFrame(producer.bytes, at, step.produce, id);
          producer.commit();
          expected.push({ size: step.produce, id });
        } else {
          consumer.drain(take, step.drain);
          consumer.release(consumer.position);
        }
      }
      consumer.drain(take, Infinity);
      assert.equal(consumer.queued(), 0);
      const frames = framesIn(drained);
      assert.deepEqual(frames.map((f) => ({ size: f.size, id: f.id })), expected);
      assert.ok(frames.every((f) => f.whole));
      assert.deepEqual(ringStats(buffer), { frames: expected.length, dropped });
    },
  ), { numRuns: 500 });
});

test('an empty ring takes a frame of up to its capacity less one octet; a full one drops and counts', () => {
  const buffer = createRing(100);
  const producer = new RingProducer(buffer);
  const consumer = new RingConsumer(buffer);
  assert.equal(producer.reserve(100), -1, 'one octet always stays free');
  const at = producer.reserve(99);
  assert.equal(at, 0);
  writeFrame(producer.bytes, at, 99, 7);
  producer.commit();
  assert.equal(producer.reserve(5), -1);
  assert.deepEqual(ringStats(buffer), { frames: 1, dropped: 2 });
  const out: number[] = [];
  assert.equal(consumer.drain((d, s, e) => { for (let i = s; i < e; i++) out.push(d[i]); }, Infinity), 99);
  assert.equal(framesIn(out).length, 1);
  assert.equal(consumer.hasFrames(), false);
});

test('drained octets stay the consumer\'s until released: the producer cannot overwrite a write in flight', () => {
  const buffer = createRing(100);
  const producer = new RingProducer(buffer);
  const consumer = new RingConsumer(buffer);
  writeFrame(producer.bytes, producer.reserve(50), 50, 1);
  producer.commit();
  assert.equal(consumer.drain(() => {}, Infinity), 50);
  assert.equal(producer.reserve(50), -1, 'the drained frame is not released yet');
  consumer.release(consumer.position);
  assert.equal(producer.reserve(50), 50, 'released: room up to the end of the ring');
});

test('drain stops before a frame that does not fit its limit and leaves it for the next call', () => {
  const buffer = createRing(1000);
  const producer = new RingProducer(buffer);
  const consumer = new RingConsumer(buffer);
  for (const size of [100, 200, 300]) {
    writeFrame(producer.bytes, producer.reserve(size), size, size & 0xff);
    producer.commit();
  }
  const sizes: number[] = [];
  const take = (_d: Uint8Array, s: number, e: number): void => { sizes.push(e - s); };
  assert.equal(consumer.drain(take, 350), 300);
  assert.equal(consumer.drain(take, 350), 300);
  assert.equal(consumer.queued(), 0);
  assert.deepEqual(sizes, [300, 300]);
});
