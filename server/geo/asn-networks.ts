// The networks of an ASN source as its layout readers (asn-mmdb.ts,
// asn-text.ts) fill them in, and the types they share with asn-source.ts,
// which merges the files. Kept apart so the readers need not import the
// module that calls them.

/** One network and the AS that originates it (as handed to the resolver CIDR trie). */
export interface AsnNetwork {
  family: 4 | 6;
  /** 16 bytes; IPv4 in the first 4; host bits zero. */
  address: Uint8Array;
  prefixLength: number;
  asn: number;
}

export type AsnLayout = 'mmdb' | 'ranges' | 'prefixes';

/**
 * Networks in columns: a full source has about 730,000, and as objects they
 * took 250 MB of heap where these arrays take 16 MB.
 */
export class AsnNetworkList {
  count = 0;
  /** 16 bytes per network; IPv4 in the first 4; host bits zero. */
  addresses = new Uint8Array(16 * 1024);
  prefixLengths = new Uint8Array(1024);
  families = new Uint8Array(1024);
  asns = new Uint32Array(1024);

  add(family: 4 | 6, address: Uint8Array, prefixLength: number, asn: number): void {
    if (this.count === this.asns.length) this.grow();
    const i = this.count++;
    this.addresses.set(address.subarray(0, 16), 16 * i);
    this.prefixLengths[i] = prefixLength;
    this.families[i] = family;
    this.asns[i] = asn;
  }

  /** A view of network i's address (16 bytes). */
  address(i: number): Uint8Array {
    return this.addresses.subarray(16 * i, 16 * i + 16);
  }

  private grow(): void {
    const size = this.asns.length * 2;
    const grown = <T extends Uint8Array | Uint32Array>(old: T, make: (n: number) => T, per = 1): T => {
      const next = make(size * per);
      next.set(old);
      return next;
    };
    this.addresses = grown(this.addresses, (n) => new Uint8Array(n), 16);
    this.prefixLengths = grown(this.prefixLengths, (n) => new Uint8Array(n));
    this.families = grown(this.families, (n) => new Uint8Array(n));
    this.asns = grown(this.asns, (n) => new Uint32Array(n));
  }
}

/** What a layout reader hands back; its networks were added to the list it was given. */
export interface AsnFileContent {
  layout: AsnLayout;
  organizations: Map<number, string>;
}
