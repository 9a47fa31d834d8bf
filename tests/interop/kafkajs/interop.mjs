// Varve interop test with the kafkajs client (2.x).
//
// Usage: node interop.mjs produce|consume   (bootstrap address from $VARVE_BOOTSTRAP)
//
//   produce  For every codec (none, gzip, snappy, lz4, zstd) × acks (0, 1, -1): create a
//            3-partition topic with admin.createTopics, send keyed records with headers and
//            explicit CreateTime timestamps to explicitly chosen partitions, check the base
//            offsets returned by send() (acks 1/-1) and, with admin.fetchTopicOffsets, that
//            every partition's high watermark equals the records sent there (all acks).
//   consume  The produce phase, then a kafkajs consumer group (fromBeginning) reads every
//            topic back and every key, value, header, timestamp, partition and offset is
//            checked. Needs the broker's group coordinator.
//
// Exit status 0 only if every check passed; failures are printed one per line.
import kafkajs from 'kafkajs';
import SnappyCodec from 'kafkajs-snappy';
import LZ4Codec from '@2l/kafkajs-lz4';
// Registers a ZSTD codec (zstd-napi) on kafkajs.CompressionCodecs as a side effect.
import '@sensejs/kafkajs-zstd-support';

const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = kafkajs;
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec;

const PARTITIONS = 3;
// Records per codec × acks combination: 3 × 3334 ≥ 10,000 per codec.
const RECORDS_PER_COMBO = 3334;
// Records per send() call; each call is one batch per partition.
const SEND_CHUNK = 500;

const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD],
];
const ACKS = [0, 1, -1];

const failures = [];
function fail(msg) {
  if (failures.length < 50) console.error(`MISMATCH: ${msg}`);
  failures.push(msg);
}
function fatal(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

// Rejects with a clear message when promise does not settle within ms.
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const bootstrap = process.env.VARVE_BOOTSTRAP;
if (!bootstrap) fatal('VARVE_BOOTSTRAP is not set (run through tests/lib/with_broker.sh)');

const kafka = new Kafka({
  clientId: 'varve-interop-kafkajs',
  brokers: bootstrap.split(','),
  connectionTimeout: 5000,
  requestTimeout: 30000,
  retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5000 },
  logLevel: logLevel.WARN,
});

function topicName(codec, acks) {
  return `kafkajs-${codec}-acks${acks === -1 ? 'all' : acks}`;
}

// Record i of a combination: partition i % 3, so its offset is floor(i / 3) when the
// records are sent in order. Values repeat a pattern so compression has work to do.
function makeRecord(topic, codec, acks, i, baseTs) {
  const unit = `v${i}-${codec}|`;
  const headers = {
    idx: Buffer.from(String(i)),
    combo: Buffer.from(`${codec}/${acks}`),
  };
  if (i % 5 === 0) headers.empty = Buffer.alloc(0);
  return {
    key: Buffer.from(`${topic}-k${String(i).padStart(6, '0')}`),
    value: Buffer.from(unit.repeat(1 + (i % 7) + Math.floor(96 / unit.length))),
    headers,
    timestamp: String(baseTs + i),
    partition: i % PARTITIONS,
    offset: Math.floor(i / PARTITIONS),
  };
}

function makeCombos(baseTs) {
  const combos = [];
  for (const [codec, type] of CODECS) {
    for (const acks of ACKS) {
      const topic = topicName(codec, acks);
      const records = [];
      for (let i = 0; i < RECORDS_PER_COMBO; i++) records.push(makeRecord(topic, codec, acks, i, baseTs));
      combos.push({ codec, type, acks, topic, records });
    }
  }
  return combos;
}

async function createTopics(admin, combos) {
  const created = await bounded(
    admin.createTopics({
      topics: combos.map((c) => ({ topic: c.topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
      waitForLeaders: true,
      timeout: 30000,
    }),
    60000,
    'admin.createTopics',
  );
  if (created !== true) fatal(`admin.createTopics returned ${created}, want true (topics already existed?)`);
  const md = await bounded(admin.fetchTopicMetadata({ topics: combos.map((c) => c.topic) }), 30000,
    'admin.fetchTopicMetadata');
  for (const t of md.topics) {
    if (t.partitions.length !== PARTITIONS) fail(`${t.name}: metadata shows ${t.partitions.length} partitions`);
    for (const p of t.partitions) {
      if (p.leader < 0) fail(`${t.name}/${p.partitionId}: no leader`);
    }
  }
}

// Sends one combination in chunks, in order, and checks the base offsets returned.
async function produceCombo(producer, c) {
  const sentPerPartition = new Array(PARTITIONS).fill(0);
  for (let start = 0; start < c.records.length; start += SEND_CHUNK) {
    const chunk = c.records.slice(start, start + SEND_CHUNK);
    const meta = await bounded(
      producer.send({
        topic: c.topic,
        acks: c.acks,
        timeout: 30000,
        compression: c.type,
        messages: chunk.map((r) => ({
          key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp, partition: r.partition,
        })),
      }),
      60000,
      `send to ${c.topic}`,
    );
    if (c.acks !== 0) {
      // One result per partition written to; baseOffset is the offset of its first record.
      const seen = new Set();
      for (const m of meta) {
        if (m.topicName !== c.topic) fail(`${c.topic}: send() result names topic ${m.topicName}`);
        if (m.errorCode !== 0) fail(`${c.topic}/${m.partition}: send() errorCode ${m.errorCode}`);
        const want = sentPerPartition[m.partition];
        if (String(m.baseOffset) !== String(want)) {
          fail(`${c.topic}/${m.partition}: send() baseOffset ${m.baseOffset}, want ${want}`);
        }
        if (m.logAppendTime !== undefined && String(m.logAppendTime) !== '-1') {
          fail(`${c.topic}/${m.partition}: logAppendTime ${m.logAppendTime} on a CreateTime topic, want -1`);
        }
        seen.add(m.partition);
      }
      const want = new Set(chunk.map((r) => r.partition));
      if (seen.size !== want.size) {
        fail(`${c.topic}: send() answered for partitions ${[...seen]}, sent to ${[...want]}`);
      }
    }
    for (const r of chunk) sentPerPartition[r.partition]++;
  }
  return sentPerPartition;
}

// High watermark of every partition equals the records sent there; log start is 0.
async function checkWatermarks(admin, c, sentPerPartition) {
  // acks=0 sends are not answered; poll (bounded) until the broker has appended them all.
  const deadline = Date.now() + 20000;
  let offsets;
  for (;;) {
    offsets = await bounded(admin.fetchTopicOffsets(c.topic), 30000, `fetchTopicOffsets ${c.topic}`);
    const done = offsets.every((o) => Number(o.high) >= sentPerPartition[o.partition]);
    if (done || c.acks !== 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (offsets.length !== PARTITIONS) fail(`${c.topic}: fetchTopicOffsets lists ${offsets.length} partitions`);
  for (const o of offsets) {
    if (String(o.high) !== String(sentPerPartition[o.partition])) {
      fail(`${c.topic}/${o.partition}: high watermark ${o.high}, sent ${sentPerPartition[o.partition]}`);
    }
    if (String(o.low) !== '0') fail(`${c.topic}/${o.partition}: low watermark ${o.low}, want 0`);
  }
}

async function producePhase(admin) {
  // Explicit CreateTimes shortly before now (brokers bound how far ahead a timestamp may be).
  const baseTs = Date.now() - 10000;
  const combos = makeCombos(baseTs);
  await createTopics(admin, combos);
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: false,
    createPartitioner: Partitioners.DefaultPartitioner, // unused: every record names its partition
  });
  await bounded(producer.connect(), 30000, 'producer.connect');
  let produced = 0;
  for (const c of combos) {
    const t0 = Date.now();
    const perPartition = await produceCombo(producer, c);
    await checkWatermarks(admin, c, perPartition);
    produced += c.records.length;
    console.log(`produced ${c.records.length} records to ${c.topic} (codec ${c.codec}, acks ${c.acks}) in ${(Date.now() - t0) / 1000}s`);
  }
  await producer.disconnect();
  return { combos, produced };
}

function sameHeaders(got, want) {
  const gk = Object.keys(got || {}).sort();
  const wk = Object.keys(want).sort();
  if (gk.join('\0') !== wk.join('\0')) return false;
  return wk.every((k) => Buffer.isBuffer(got[k]) && got[k].equals(want[k]));
}

async function consumePhase(combos) {
  const byTopic = new Map(combos.map((c) => [c.topic, { c, got: [] }]));
  const target = combos.reduce((n, c) => n + c.records.length, 0);
  let total = 0;
  let resolveDone;
  let rejectDone;
  const done = new Promise((resolve, reject) => { resolveDone = resolve; rejectDone = reject; });
  const consumer = kafka.consumer({
    groupId: `varve-interop-kafkajs-${process.pid}`,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  });
  // A crashed consumer (e.g. no group coordinator) fails the run at once.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    rejectDone(new Error(`consumer crashed: ${payload.error && payload.error.message}`));
  });
  await bounded(consumer.connect(), 30000, 'consumer.connect');
  await bounded(consumer.subscribe({ topics: combos.map((c) => c.topic), fromBeginning: true }), 30000,
    'consumer.subscribe');
  await consumer.run({
    autoCommit: true,
    eachBatch: async ({ batch }) => {
      const entry = byTopic.get(batch.topic);
      for (const m of batch.messages) {
        entry.got.push({ partition: batch.partition, ...m });
        total++;
      }
      if (total >= target) resolveDone();
    },
  });
  try {
    await bounded(done, 120000, `consuming ${target} records (got ${total} so far)`);
  } catch (e) {
    fail(`${e.message}; consumed ${total}`);
  }
  await consumer.disconnect();

  let consumed = 0;
  for (const { c, got } of byTopic.values()) {
    consumed += got.length;
    if (got.length !== c.records.length) fail(`${c.topic}: consumed ${got.length}, produced ${c.records.length}`);
    const want = new Map(c.records.map((r) => [r.key.toString(), r]));
    const seen = new Set();
    for (const m of got) {
      const k = m.key ? m.key.toString() : '<null>';
      const r = want.get(k);
      if (!r) { fail(`${c.topic}: unknown key ${k} at ${m.partition}/${m.offset}`); continue; }
      if (seen.has(k)) { fail(`${c.topic}: key ${k} consumed twice`); continue; }
      seen.add(k);
      if (!m.value || !m.value.equals(r.value)) fail(`${c.topic}: key ${k} value differs`);
      if (!sameHeaders(m.headers, r.headers)) fail(`${c.topic}: key ${k} headers differ: ${JSON.stringify(m.headers)}`);
      if (m.timestamp !== r.timestamp) fail(`${c.topic}: key ${k} timestamp ${m.timestamp}, sent ${r.timestamp}`);
      if (m.partition !== r.partition) fail(`${c.topic}: key ${k} partition ${m.partition}, sent to ${r.partition}`);
      // Sends were sequential and in order, so record i sits at offset floor(i/3) of its
      // partition for every acks setting (acks=1/-1 also confirmed by send()'s baseOffset).
      if (String(m.offset) !== String(r.offset)) fail(`${c.topic}: key ${k} offset ${m.offset}, want ${r.offset}`);
    }
    const missing = [...want.keys()].filter((k) => !seen.has(k));
    if (missing.length > 0) {
      fail(`${c.topic}: ${missing.length} keys produced, not consumed (first: ${missing.slice(0, 3).join(', ')})`);
    }
  }
  return consumed;
}

async function main() {
  const mode = process.argv[2];
  if (mode !== 'produce' && mode !== 'consume') fatal('usage: node interop.mjs produce|consume');
  const started = Date.now();
  const admin = kafka.admin();
  await bounded(admin.connect(), 30000, 'admin.connect');
  const { combos, produced } = await producePhase(admin);
  await admin.disconnect();
  if (mode === 'produce') {
    console.log(`produced=${produced} mismatches=${failures.length}`);
  } else {
    const consumed = await consumePhase(combos);
    console.log(`produced=${produced} consumed=${consumed} mismatches=${failures.length}`);
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (failures.length > 0) {
    console.log(`kafkajs ${mode}: FAILED with ${failures.length} mismatches in ${secs}s`);
    process.exit(1);
  }
  console.log(`kafkajs ${mode}: OK in ${secs}s`);
  process.exit(0);
}

main().catch((e) => fatal(e && e.stack ? e.stack : String(e)));
