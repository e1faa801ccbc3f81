// Counting what a UDP socket is sent during a flood, and knowing when all of
// it has arrived: the server answers one socket's queries in order, so once
// the reply to a final marker query (a name in a rate-limit bucket of its
// own) is in, every earlier reply is too — an event, not a wait.

import type { Socket } from 'node:dgram';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';

const MARKER_ID = 0xbeef;
/** Only catches a marker never answered. */
const NEVER_MS = 15_000;

export interface ReplyCount {
  /** Replies with records or a full header, not truncated by RRL's slip. */
  full: number;
  truncated: number;
  /** Bytes received, the marker's reply excluded. */
  bytes: number;
  /** Size of the last full reply. */
  fullSize: number;
  /** Sends the marker query to 127.0.0.1:`port` and resolves once every reply sent before it has arrived. */
  settle(port: number, markerName?: string): Promise<void>;
}

export function countReplies(socket: Socket): ReplyCount {
  let markerSeen: () => void = () => {};
  const count: ReplyCount = {
    full: 0,
    truncated: 0,
    bytes: 0,
    fullSize: 0,
    async settle(port, markerName = 'status.cdn.example') {
      const seen = new Promise<void>((resolve) => { markerSeen = resolve; });
      socket.send(query(markerName, TYPE.A, { id: MARKER_ID }), port, '127.0.0.1');
      let timer: NodeJS.Timeout | undefined;
      const never = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`the marker query for ${markerName} was never answered`)), NEVER_MS); });
      try {
        await Promise.race([seen, never]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  socket.on('message', (msg: Buffer) => {
    const reply = readReply(msg);
    if (reply.id === MARKER_ID) return markerSeen();
    count.bytes += msg.length;
    if (reply.tc && reply.answers.length === 0) count.truncated++;
    else {
      count.full++;
      count.fullSize = msg.length;
    }
  });
  return count;
}
