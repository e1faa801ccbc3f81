// Compact numeric forms of country and continent codes, and the packed string
// table, so location data stays in typed arrays.

import type { PackedStrings } from './types.ts';

/** Index 0 means "unknown"; the rest are the MaxMind / GeoNames continent codes. */
export const CONTINENT_CODES: readonly string[] = ['', 'AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'];

export function continentNumber(code: string | undefined): number {
  if (!code) return 0;
  const n = CONTINENT_CODES.indexOf(code);
  return n > 0 ? n : 0;
}

/** "GB" → 0x4742; anything that is not two ASCII letters → 0. */
export function countryNumber(code: string | undefined): number {
  if (!code || code.length !== 2) return 0;
  const a = code.charCodeAt(0);
  const b = code.charCodeAt(1);
  if (a > 127 || b > 127) return 0;
  return (a << 8) | b;
}

export function countryText(packed: number): string {
  return packed === 0 ? '' : String.fromCharCode(packed >> 8, packed & 0xff);
}

/** Builds a PackedStrings table; add() dedupes and returns the index (0 is ""). */
export class PackedStringsBuilder {
  private readonly indexOf = new Map<string, number>([['', 0]]);
  private readonly list: string[] = [''];

  add(text: string): number {
    let index = this.indexOf.get(text);
    if (index === undefined) {
      index = this.list.length;
      this.list.push(text);
      this.indexOf.set(text, index);
    }
    return index;
  }

  finish(): PackedStrings {
    const encoded = this.list.map((s) => Buffer.from(s, 'utf8'));
    let total = 0;
    for (const e of encoded) total += e.length;
    const bytes = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
    const offsets = new Uint32Array(new SharedArrayBuffer(4 * (encoded.length + 1)));
    let at = 0;
    for (let i = 0; i < encoded.length; i++) {
      offsets[i] = at;
      bytes.set(encoded[i], at);
      at += encoded[i].length;
    }
    offsets[encoded.length] = at;
    return { bytes, offsets };
  }
}

/** Slow path (explain, logs): decodes string i. */
export function stringAt(table: PackedStrings, index: number): string {
  if (index <= 0 || index + 1 >= table.offsets.length) return '';
  // TextDecoder refuses views of shared memory; a Buffer view does not.
  const start = table.offsets[index];
  return Buffer.from(table.bytes.buffer, table.bytes.byteOffset + start, table.offsets[index + 1] - start).toString('utf8');
}

/**
 * Continent of each country (ISO 3166-1 alpha-2 + continent code), as the
 * bundled GeoLite2 data (2019) assigns them: for databases that give only a
 * country (DB-IP's flat layout), the continent is derived from it.
 */
const COUNTRY_CONTINENTS = 'ADEU AEAS AFAS AGNA AINA ALEU AMAS AOAF AQAN ARSA ASOC ATEU AUOC AWNA AXEU AZAS BAEU BBNA BDAS BEEU BFAF BGEU BHAS BIAF BJAF BLNA BMNA BNAS BOSA BQNA BRSA BSNA BTAS BVAN BWAF BYEU BZNA CANA CCAS CDAF CFAF CGAF CHEU CIAF CKOC CLSA CMAF CNAS COSA CRNA CUNA CVAF CWNA CXOC CYEU CZEU DEEU DJAF DKEU DMNA DONA DZAF ECSA EEEU EGAF EHAF ERAF ESEU ETAF FIEU FJOC FKSA FMOC FOEU FREU GAAF GBEU GDNA GEAS GFSA GGEU GHAF GIEU GLNA GMAF GNAF GPNA GQAF GREU GSAN GTNA GUOC GWAF GYSA HKAS HMAN HNNA HREU HTNA HUEU IDAS IEEU ILAS IMEU INAS IOAS IQAS IRAS ISEU ITEU JEEU JMNA JOAS JPAS KEAF KGAS KHAS KIOC KMAF KNNA KPAS KRAS KWAS KYNA KZAS LAAS LBAS LCNA LIEU LKAS LRAF LSAF LTEU LUEU LVEU LYAF MAAF MCEU MDEU MEEU MFNA MGAF MHOC MKEU MLAF MMAS MNAS MOAS MPOC MQNA MRAF MSNA MTEU MUAF MVAS MWAF MXNA MYAS MZAF NAAF NCOC NEAF NFOC NGAF NINA NLEU NOEU NPAS NROC NUOC NZOC OMAS PANA PESA PFOC PGOC PHAS PKAS PLEU PMNA PNOC PRNA PSAS PTEU PWOC PYSA QAAS REAF ROEU RSEU RUEU RWAF SAAS SBOC SCAF SDAF SEEU SGAS SHAF SIEU SJEU SKEU SLAF SMEU SNAF SOAF SRSA SSAF STAF SVNA SXNA SYAS SZAF TCNA TDAF TFAN TGAF THAS TJAS TKOC TLOC TMAS TNAF TOOC TRAS TTNA TVOC TWAS TZAF UAEU UGAF UMOC USNA UYSA UZAS VAEU VCNA VESA VGNA VINA VNAS VUOC WFOC WSOC XKEU YEAS YTAF ZAAF ZMAF ZWAF';
const continentByCountry = new Map(COUNTRY_CONTINENTS.split(' ').map((e) => [e.slice(0, 2), e.slice(2)]));

/** "DE" → "EU"; '' when the country is unknown. */
export function continentOfCountry(country: string): string {
  return continentByCountry.get(country) ?? '';
}
