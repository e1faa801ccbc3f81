// Minimal typings for the parts of dns2 popsteer uses (its client and codec);
// the package ships none.
declare module 'dns2' {
  export interface DnsAnswer {
    name: string;
    type: number;
    class: number;
    ttl: number;
    address?: string;
    domain?: string;
    data?: string | string[];
    [key: string]: unknown;
  }
  export interface DnsResponse {
    header: { id: number; qr: number; opcode: number; aa: number; tc: number; rd: number; ra: number; z: number; rcode: number };
    questions: Array<{ name: string; type: number; class: number }>;
    answers: DnsAnswer[];
    authorities: DnsAnswer[];
    additionals: DnsAnswer[];
  }
  export interface ClientOptions {
    dns?: string;
    port?: number;
    recursive?: boolean;
    timeout?: number;
  }
  export type Resolver = (name: string, type?: string, cls?: number, clientIp?: string) => Promise<DnsResponse>;

  class Packet {
    constructor(init?: unknown);
    static parse(buffer: Buffer | Uint8Array): DnsResponse & Packet;
    static Reader: new (buffer: Buffer | Uint8Array, offset?: number) => unknown;
    static TYPE: Record<string, number>;
    static CLASS: Record<string, number>;
    static EDNS_OPTION_CODE: Record<string, number>;
    static Question: { encode(q: unknown): Buffer };
    static Resource: {
      A(name: string, address: string): unknown;
      EDNS(options: unknown[]): unknown;
      encode(r: unknown): Buffer;
    };
    static createResourceFromRequest(request: unknown, resource: unknown): unknown;
    static createResponseFromRequest(request: unknown): Packet;
    static Header: unknown;
    header: DnsResponse['header'];
    questions: unknown[];
    answers: unknown[];
    authorities: unknown[];
    additionals: unknown[];
    toBuffer(): Buffer;
  }

  class DNS {
    constructor(options?: ClientOptions);
    static Packet: typeof Packet;
    static UDPClient(options?: ClientOptions): Resolver;
    static TCPClient(options?: ClientOptions): Resolver;
    resolve(name: string, type?: string, cls?: string, clientIp?: string): Promise<DnsResponse>;
    resolveA(name: string, clientIp?: string): Promise<DnsResponse>;
    resolveAAAA(name: string): Promise<DnsResponse>;
  }
  export default DNS;
  export { Packet };
}
