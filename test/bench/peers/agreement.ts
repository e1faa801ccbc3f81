// "A faster wrong answer cannot win": asks every server the same sampled ECS
// queries and compares the A record with the reference (the PoP nearest to
// the database's location for that network, computed here) and with the
// other servers.

import { encodeQuery, firstAddressOf, type SampledNetwork } from './queries.ts';
import { openUdpClient } from './udp-client.ts';

export interface AgreementSample {
  network: SampledNetwork;
  /** The A record the server answered, or a tag: "timeout", "rcode N", "no A". */
  answer: string;
}

const QUERY_TIMEOUT_MS = 1000;

/** Evenly spread `count` samples over the full list, so every family and region is present. */
export function spreadSample<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items.slice();
  const step = items.length / count;
  return Array.from({ length: count }, (_, i) => items[Math.floor(i * step)]);
}

export async function askAll(port: number, queryName: string, networks: SampledNetwork[]): Promise<AgreementSample[]> {
  const client = await openUdpClient(port);
  const samples: AgreementSample[] = [];
  try {
    for (const network of networks) {
      const response = await client.ask(encodeQuery(queryName, network), QUERY_TIMEOUT_MS);
      let answer: string;
      if (!response) answer = 'timeout';
      else {
        const { rcode, address } = firstAddressOf(response);
        answer = rcode !== 0 ? `rcode ${rcode}` : address ?? 'no A';
      }
      samples.push({ network, answer });
    }
  } finally {
    client.close();
  }
  return samples;
}

export interface AgreementSummary {
  server: string;
  asked: number;
  matchesReference: number;
  /** Answers equal to the other named server's, per server. */
  matchesPeer: Record<string, number>;
  /** A few disagreements with the reference, for the report. */
  examples: string[];
}

export function summarize(results: Map<string, AgreementSample[]>, popIdByAddress: Map<string, string>): AgreementSummary[] {
  const label = (address: string): string => (popIdByAddress.has(address) ? `${popIdByAddress.get(address)} ${address}` : address);
  const summaries: AgreementSummary[] = [];
  for (const [server, samples] of results) {
    const summary: AgreementSummary = { server, asked: samples.length, matchesReference: 0, matchesPeer: {}, examples: [] };
    for (let i = 0; i < samples.length; i++) {
      const { network, answer } = samples[i];
      if (answer === network.expectedAddress) summary.matchesReference++;
      else if (summary.examples.length < 3) {
        summary.examples.push(`${network.subnet} (${network.lat}, ${network.lon}): answered ${label(answer)}, nearest ${network.expectedPopId}`);
      }
      for (const [peer, peerSamples] of results) {
        if (peer === server) continue;
        if (peerSamples[i]?.answer === answer) summary.matchesPeer[peer] = (summary.matchesPeer[peer] ?? 0) + 1;
        else summary.matchesPeer[peer] ??= 0;
      }
    }
    summaries.push(summary);
  }
  return summaries;
}
