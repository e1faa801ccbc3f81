// What the sockets need from the layer above: bytes in, bytes out.

export const PROTO_UDP = 0;
export const PROTO_TCP = 1;

/** A reused description of the sender; fields are overwritten for every message. */
export interface Peer {
  address: string;
  /** 0 = IPv4, 1 = IPv6. */
  family: number;
  port: number;
}

/** Answers DNS messages into one reused buffer; the listeners copy the reply out. */
export interface Responder {
  /**
   * Answers one message. Returns the reply's length, the reply being the
   * first octets of `reply` until the next call; 0 sends nothing.
   */
  answer(message: Uint8Array, length: number, protocol: number, peer: Peer): number;
  /** Where answer() leaves its reply. */
  readonly reply: Buffer;
}
