// What the sockets need from the layer above: bytes in, bytes out.

export const PROTO_UDP = 0;
export const PROTO_TCP = 1;

/** A reused description of the sender; fields are overwritten for every message. */
export interface Peer {
  address: string;
  /** 0 = IPv4, 1 = IPv6. */
  family: number;
}

/**
 * Answers one DNS message. Returns a Buffer the caller may keep (and send
 * asynchronously), or null to send nothing.
 */
export type MessageHandler = (message: Uint8Array, length: number, protocol: number, peer: Peer) => Buffer | null;
