// Durations: RFC 3339 and Mandos's older "5m 30s" form, checked against
// Debian's Mandos string_to_delta() itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDuration, formatDuration, DurationError } from "../../src/config/duration.js";
import { askMandos, oracleSkip } from "../helpers/config.js";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const W = 7 * D;

test("RFC 3339 durations", () => {
  const cases: [string, number][] = [
    ["PT0S", 0],
    ["PT5M", 5 * M],
    ["PT60S", 60 * S],
    ["PT24H", D],
    ["PT5M30S", 5 * M + 30 * S],
    ["PT1H5M", H + 5 * M],
    ["P7D", 7 * D],
    ["P1DT2H", D + 2 * H],
    ["P1DT3M20S", D + 3 * M + 20 * S],
    ["P2W", 2 * W],
    ["P1M", 4 * W], // Mandos: a month is 4 weeks
    ["P1Y", 52 * W], // and a year 52 weeks
    ["P1Y2M3DT4H5M6S", 52 * W + 8 * W + 3 * D + 4 * H + 5 * M + 6 * S],
    ["P007D", 7 * D],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test("the older form: numbers with s m h d w, separated by whitespace", () => {
  const cases: [string, number][] = [
    ["60s", 60 * S],
    ["5m", 5 * M],
    ["24h", D],
    ["7d", 7 * D],
    ["1w", W],
    ["5m 30s", 5 * M + 30 * S],
    ["  1d\t2h  ", D + 2 * H],
    ["1h 1h", 2 * H],
    ["1_0s", 10 * S],
    ["+5m", 5 * M],
    ["5m -1m", 4 * M],
    ["", 0], // Mandos reads an empty value as zero
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test("bad durations give a clear one-line error naming the text", () => {
  const bad = ["1h30m", "5x", "5", "m", "PT", "P", "P1DT", "PT1S2M", "PT1H5S", "P1YT1H", "P1Y3D", "P1W2D", "pt5m", "PT5.5S", "5 m", "-5m", "P99999999999999999999D"];
  for (const text of bad) {
    assert.throws(
      () => parseDuration(text),
      (e: unknown) => e instanceof DurationError && e.message.includes(JSON.stringify(text)) && !e.message.includes("\n"),
      text,
    );
  }
  assert.throws(() => parseDuration("5q"), /unknown unit "q"/);
  assert.throws(() => parseDuration("-5m"), /negative/);
});

test("formatDuration writes RFC 3339 that parseDuration reads back", () => {
  const cases: [number, string][] = [
    [0, "PT0S"],
    [S, "PT1S"],
    [5 * M, "PT5M"],
    [2 * H, "PT2H"],
    [D, "P1D"],
    [D + 2 * H + 3 * M + 4 * S, "P1DT2H3M4S"],
    [15 * M, "PT15M"],
    [2 * W, "P14D"],
    [H + 30 * S, "PT1H0M30S"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text, String(ms));
    assert.equal(parseDuration(text), ms, text);
  }
  assert.equal(formatDuration(1500), "PT1.5S");
  assert.equal(formatDuration(D + 5), "P1DT0.005S");
  assert.equal(formatDuration(D + H + 1), "P1DT1H0M0.001S");
  assert.throws(() => formatDuration(-1), RangeError);
  assert.throws(() => formatDuration(1.5), RangeError);
});

test("formatDuration round-trips whole seconds", () => {
  // A fixed linear congruential sequence: varied values, same every run.
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const ms = (x % 5_000_000) * S * (i % 3 === 0 ? 37 : 1);
    assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
  }
});

test("every duration reads as Debian's Mandos reads it", { skip: oracleSkip }, async () => {
  const texts = [
    "PT0S", "PT5M", "PT2M", "PT15M", "PT1S", "P1DT2H", "P2W", "P1M", "P1Y", "P1Y2M3DT4H5M6S", "P1Y2M", "P1M3D",
    "P1DT3M20S", "PT1H5M", "PT1M30S", "P007D", "60s", "5m 30s", "1d 2h", "  1d\t2h  ", "1_0s", "+5m", "5m -1m",
    "", "1h30m", "5x", "5", "PT", "P", "P1DT", "PT1S2M", "PT1H5S", "P1YT1H", "P1Y3D", "P1W2D", "pt5m", "PT5.5S",
    "5 m", "P1D 5m", "PT5M ", "1w1d",
  ];
  // What formatDuration() writes must read back in Mandos too.
  const written = [0, S, 59 * S, H + S, H + M + S, D, D + S, 3 * D + 4 * H, 400 * D + 23 * H + 59 * M + 59 * S].map(formatDuration);
  texts.push(...written);
  const answers = await askMandos(texts.map((text) => ({ op: "delta" as const, text })));
  for (const text of written) assert.ok("ms" in answers[texts.indexOf(text)]!, `Mandos cannot read ${text}`);
  for (const [i, text] of texts.entries()) {
    const answer = answers[i]!;
    if ("ms" in answer) assert.equal(parseDuration(text), answer.ms, JSON.stringify(text));
    else assert.throws(() => parseDuration(text), DurationError, JSON.stringify(text));
  }
});
