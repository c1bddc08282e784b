#!/usr/bin/env node
// kafkajs compatibility program (e2e/clients/CONTRACT.md).
//
//   node e2e/clients/kafkajs/compat.js --bootstrap HOST:PORT --topic T --group G \
//       --phase one|two|security --state FILE
//       [--sasl-bootstrap H:P --mtls-bootstrap H:P --ca FILE --client-cert FILE
//        --client-key FILE --scram-user U --scram-password P]   (phase security)
//
// The last stdout line is `COMPAT {json}`; progress goes to stdout before it, kafkajs's
// own warnings to stderr.
//
// kafkajs specifics:
// - Codecs: gzip is built in; snappy comes from the kafkajs-snappy plugin (pure JS).
//   The LZ4 and ZSTD plugins the kafkajs docs name (kafkajs-lz4, @kafkajs/zstd) need
//   native builds (lz4 via node-gyp, cppzst fails to compile against Node 20's headers),
//   so this program registers small codecs over pure JS/WASM libraries instead: lz4js
//   (LZ4 frame format) and @bokuweb/zstd-wasm (compress) + fzstd (decompress).
// - Every codec is wrapped to count its calls: the compression check requires that each
//   codec compressed the batches sent and decompressed the batches fetched.
// - kafkajs has no group-less consumer (no assign()), so every read-back (compression,
//   idempotence) goes through a consumer group.
// - kafkajs has no static membership (no group.instance.id): static_membership is n/a.
// - kafkajs has no auto.offset.reset=none: phase two uses fromBeginning=true, so a lost
//   commit shows up as re-delivered old messages.
// - The three members of --group subscribe before anything is produced (the topic is
//   created first by a metadata request), so no member consumes a message that a later
//   rebalance hands to another member.
'use strict'

const fs = require('fs')
const path = require('path')
const {
  Kafka,
  logLevel,
  CompressionTypes,
  CompressionCodecs,
  Partitioners,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const zstd = require('@bokuweb/zstd-wasm')
const fzstd = require('fzstd')

const CLIENT = 'kafkajs'
const PARTITIONS = 6
const KEYS = 60
const N_ONE = 600
const N_IDEM = 100
const N_TWO = 300
const N_CODEC = 10
const N_SECURE = 20
const PHASE_CAPS = {
  one: ['produce', 'consume', 'groups', 'static_membership', 'compression', 'idempotence'],
  two: ['commit_resume'],
  security: ['sasl_scram', 'mtls'],
}
const SECURITY_FLAGS = ['sasl-bootstrap', 'mtls-bootstrap', 'ca', 'client-cert', 'client-key', 'scram-user', 'scram-password']
const SESSION_TIMEOUT_MS = 10000
const LEAVE_TIMEOUT_MS = 8000 // the rest re-form after a LeaveGroup sooner than a session expires
const T0 = Date.now()

function say(msg) {
  process.stdout.write(`[${((Date.now() - T0) / 1000).toFixed(2).padStart(6)}s] ${msg}\n`)
}

class Check extends Error {}

function ensure(cond, msg) {
  if (!cond) throw new Check(msg)
}

function pkgVersion(name) {
  try {
    const file = path.join(__dirname, 'node_modules', name, 'package.json')
    return JSON.parse(fs.readFileSync(file, 'utf8')).version
  } catch (e) {
    return '?'
  }
}

// ---------------------------------------------------------------------------------------
// Codecs

const CODECS = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) {
    return Buffer.from(zstd.compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    return Buffer.from(fzstd.decompress(buffer))
  },
})

// Every codec counts its calls, so the check can show that batches really went out
// compressed with it and came back compressed from the broker.
const codecCalls = {}
for (const [name, type] of Object.entries(CODECS)) {
  const factory = CompressionCodecs[type]
  const calls = (codecCalls[name] = { compress: 0, decompress: 0 })
  CompressionCodecs[type] = () => {
    const inner = factory()
    return {
      async compress(encoder) {
        calls.compress += 1
        return inner.compress(encoder)
      },
      async decompress(buffer) {
        calls.decompress += 1
        return inner.decompress(buffer)
      },
    }
  }
}

const CODEC_NOTE =
  `gzip built in; snappy kafkajs-snappy ${pkgVersion('kafkajs-snappy')}; ` +
  `lz4 lz4js ${pkgVersion('lz4js')}; zstd @bokuweb/zstd-wasm ${pkgVersion('@bokuweb/zstd-wasm')} + fzstd ${pkgVersion('fzstd')}`

// ---------------------------------------------------------------------------------------
// Report

class Report {
  constructor(phase) {
    this.phase = phase
    this.checks = {}
    this.notes = {}
    this.printed = false
  }

  set(cap, result, note) {
    say(`${cap}: ${result} (${note})`)
    this.checks[cap] = result
    this.notes[cap] = note
  }

  async decide(cap, fn) {
    try {
      const note = await fn()
      this.set(cap, 'pass', note)
      return true
    } catch (e) {
      this.set(cap, 'fail', e instanceof Check ? e.message : `${e.name}: ${e.message}`)
      return false
    }
  }

  emit(missingNote) {
    if (this.printed) return
    for (const cap of PHASE_CAPS[this.phase]) {
      if (!(cap in this.checks)) {
        this.checks[cap] = 'fail'
        this.notes[cap] = missingNote
      }
    }
    const line = {
      client: CLIENT,
      version: `kafkajs ${pkgVersion('kafkajs')}`,
      checks: this.checks,
      notes: this.notes,
    }
    process.stdout.write(`COMPAT ${JSON.stringify(line)}\n`)
    this.printed = true
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

function parseArgs(argv) {
  const args = { deadline: 170 }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const name = flag.replace(/^--/, '')
    if (![...['bootstrap', 'topic', 'group', 'phase', 'state', 'deadline'], ...SECURITY_FLAGS].includes(name) || i + 1 >= argv.length) {
      throw new Error(`usage: compat.js --bootstrap H:P --topic T --group G --phase one|two|security --state FILE (bad argument ${flag})`)
    }
    args[name] = argv[++i]
  }
  for (const k of ['bootstrap', 'topic', 'group', 'phase', 'state']) {
    if (!args[k]) throw new Error(`missing --${k}`)
  }
  if (!(args.phase in PHASE_CAPS)) throw new Error(`--phase must be one, two or security, not ${args.phase}`)
  if (args.phase === 'security') {
    for (const k of SECURITY_FLAGS) if (!args[k]) throw new Error(`missing --${k} (phase security)`)
  }
  args.deadline = Number(args.deadline)
  return args
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(what, timeoutMs, cond) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await cond()
    if (r) return r
    if (Date.now() > deadline) throw new Check(`${what}: not within ${timeoutMs / 1000}s`)
    await sleep(50)
  }
}

function batch(prefix, n, pad = '') {
  return Array.from({ length: n }, (_, i) => ({ key: `key-${i % KEYS}`, value: `${prefix}:${i}${pad}` }))
}

// Codec messages carry a compressible tail, so a compressed batch is smaller than the
// plain one (librdkafka-based clients skip compression otherwise; kafkajs does not).
const PAD = ':' + 'compressible '.repeat(24)

function recOf(partition, message) {
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
  }
}

const recKey = r => `${r.partition}/${r.offset}/${r.key}/${r.value}`

// Values prefix:0..n-1 each exactly once with the right key, in sequence order within
// each partition, each key in one partition only. Returns those records.
function onceInOrder(what, prefix, n, recs) {
  const mine = recs
    .filter(r => typeof r.value === 'string' && r.value.startsWith(`${prefix}:`))
    .sort((a, b) => a.partition - b.partition || a.offset - b.offset)
  const count = new Map()
  const last = new Map()
  const keyPartition = new Map()
  for (const r of mine) {
    const seq = Number(r.value.split(':')[1])
    count.set(seq, (count.get(seq) || 0) + 1)
    ensure(r.key === `key-${seq % KEYS}`, `${what}: ${r.value} has key ${r.key}`)
    ensure(
      !last.has(r.partition) || seq > last.get(r.partition),
      `${what}: partition ${r.partition} holds ${prefix}:${seq} after ${prefix}:${last.get(r.partition)}`
    )
    last.set(r.partition, seq)
    const kp = keyPartition.get(r.key)
    ensure(kp === undefined || kp === r.partition, `${what}: key ${r.key} in partitions ${kp} and ${r.partition}`)
    keyPartition.set(r.key, r.partition)
  }
  const dups = [...count].filter(([, c]) => c > 1).map(([s]) => s)
  ensure(dups.length === 0, `${what}: duplicated ${prefix} messages ${dups.slice(0, 10)}`)
  const missing = []
  for (let s = 0; s < n; s++) if (!count.has(s)) missing.push(s)
  ensure(missing.length === 0, `${what}: ${missing.length} ${prefix} messages missing, first ${missing.slice(0, 10)}`)
  return mine
}

// Each partition's records are exactly offsets 0..end-1, once each, in increasing order
// as delivered.
function contiguous(what, recs, end) {
  const byP = new Map()
  for (const r of recs) {
    if (!byP.has(r.partition)) byP.set(r.partition, [])
    byP.get(r.partition).push(r.offset)
  }
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = byP.get(p) || []
    for (let i = 1; i < offs.length; i++) {
      ensure(offs[i] > offs[i - 1], `${what}: partition ${p} delivered offset ${offs[i]} after ${offs[i - 1]}`)
    }
    ensure(
      offs.length === end[p] && (offs.length === 0 || (offs[0] === 0 && offs[offs.length - 1] === end[p] - 1)),
      `${what}: partition ${p}: ${offs.length} records (offsets ${offs[0]}..${offs[offs.length - 1]}), end offset ${end[p]}`
    )
  }
}

function coversDisjoint(sets) {
  const union = new Set()
  let total = 0
  for (const s of sets) {
    if (s.size === 0) return false
    total += s.size
    for (const p of s) union.add(p)
  }
  if (total !== union.size || union.size !== PARTITIONS) return false
  for (let p = 0; p < PARTITIONS; p++) if (!union.has(p)) return false
  return true
}

const show = sets => JSON.stringify(sets.map(s => [...s].sort((a, b) => a - b)))

// ---------------------------------------------------------------------------------------
// Client pieces

// `security`: the security phase's ssl / sasl options of the Kafka client (none otherwise).
function makeKafka(bootstrap, security = {}) {
  const logCreator = () => ({ namespace, label, log }) => {
    const { message, timestamp, logger, ...rest } = log
    process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(rest)}\n`)
  }
  return new Kafka({
    clientId: 'compat-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator,
    retry: { initialRetryTime: 100, retries: 8 },
    ...security,
  })
}

// Waits until the admin client's metadata shows the topic with six led partitions. The
// admin client never creates topics (kafkajs sends allowAutoTopicCreation=false for it);
// the consumers' and producers' metadata requests do.
async function ensureTopic(admin, topic, timeoutMs = 20000) {
  let last = 'no answer'
  await waitFor(`topic ${topic} with ${PARTITIONS} led partitions`, timeoutMs, async () => {
    try {
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      const t = md.topics.find(x => x.name === topic)
      const led = t ? t.partitions.filter(p => p.leader >= 0 && p.partitionErrorCode === 0).length : 0
      last = t ? `${t.partitions.length} partitions, ${led} led` : 'absent'
      return t && t.partitions.length === PARTITIONS && led === PARTITIONS
    } catch (e) {
      last = `${e.name}: ${e.message}`
      return false
    }
  }).catch(e => {
    throw new Check(`${e.message}: ${last}`)
  })
}

async function endOffsets(admin, topic) {
  const offs = await admin.fetchTopicOffsets(topic)
  const end = {}
  for (const o of offs) end[o.partition] = Number(o.high)
  return end
}

async function committedOffsets(admin, groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] })
  const out = {}
  for (const t of res) {
    if (t.topic !== topic) continue
    for (const p of t.partitions) out[p.partition] = Number(p.offset)
  }
  return out
}

// Sends `msgs` in sends of `chunk` messages; returns the per-send partition results.
async function produce(producer, topic, msgs, { chunk = 50, compression } = {}) {
  const results = []
  for (let i = 0; i < msgs.length; i += chunk) {
    const res = await producer.send({ topic, acks: -1, compression, messages: msgs.slice(i, i + chunk) })
    for (const r of res) {
      ensure(r.errorCode === 0, `send to ${topic}: partition ${r.partition} error code ${r.errorCode}`)
    }
    results.push(...res)
  }
  return results
}

// A group member; what kafkajs reports about it is kept on the object.
class Member {
  constructor(kafka, name, groupId, topics) {
    this.name = name
    this.groupId = groupId
    this.topics = topics
    this.assignment = new Map() // topic -> Set(partitions)
    this.assigns = 0
    this.rebalancing = true
    this.records = [] // {topic, partition, offset, key, value}
    this.errors = []
    this.consumer = kafka.consumer({
      groupId,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: 20000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
      retry: { initialRetryTime: 100, retries: 8 },
    })
    const ev = this.consumer.events
    this.consumer.on(ev.GROUP_JOIN, e => {
      const a = new Map()
      for (const [t, ps] of Object.entries(e.payload.memberAssignment || {})) a.set(t, new Set(ps))
      this.assignment = a
      this.assigns += 1
      this.rebalancing = false
      say(`${name}: joined, assigned ${JSON.stringify(e.payload.memberAssignment)}`)
    })
    this.consumer.on(ev.REBALANCING, () => {
      this.rebalancing = true
      say(`${name}: rebalancing`)
    })
    this.consumer.on(ev.CRASH, e => {
      const err = e.payload.error
      this.errors.push(`${err && err.name}: ${err && err.message}`)
      say(`${name}: crash ${err && err.message}`)
    })
  }

  parts(topic) {
    return this.assignment.get(topic) || new Set()
  }

  async start() {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: this.topics, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        this.records.push({ topic, ...recOf(partition, message) })
      },
    })
  }

  async stop() {
    await this.consumer.disconnect()
    say(`${this.name}: disconnected`)
  }
}

async function waitAssigned(what, members, topic, timeoutMs, extra = () => true) {
  try {
    return await waitFor(what, timeoutMs, () => {
      const sets = members.map(m => m.parts(topic))
      if (members.every(m => !m.rebalancing) && coversDisjoint(sets) && extra()) return sets
      return null
    })
  } catch (e) {
    const errs = members.flatMap(m => m.errors)
    throw new Check(
      `${what}: no disjoint assignment of all ${PARTITIONS} partitions within ${timeoutMs / 1000}s; ` +
        `assignments ${show(members.map(m => m.parts(topic)))}; errors ${JSON.stringify(errs)}`
    )
  }
}

// ---------------------------------------------------------------------------------------
// Phase one

async function phaseOne(kafka, args, report, cleanup) {
  const { topic, group } = args
  const admin = kafka.admin()
  cleanup.push(() => admin.disconnect())
  await admin.connect()
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  cleanup.push(() => producer.disconnect())
  await producer.connect()

  // The three members join before anything is produced; their subscription's metadata
  // request auto-creates the topic.
  const members = []
  let three = null
  let groupErr = null
  let topicErr = null
  try {
    for (const i of [1, 2, 3]) {
      const m = new Member(kafka, `member-${i}`, group, [topic])
      members.push(m)
      cleanup.push(() => m.consumer.disconnect())
    }
    await Promise.all(members.map(m => m.start()))
  } catch (e) {
    groupErr = e
  }
  try {
    await ensureTopic(admin, topic)
  } catch (e) {
    topicErr = e
    groupErr = groupErr || e
  }
  if (!groupErr) {
    try {
      three = await waitAssigned('3 members', members, topic, 30000)
      say(`3 members: ${show(three)}`)
    } catch (e) {
      groupErr = e
    }
  }

  // produce
  let produceErr = topicErr
  if (!produceErr) {
    try {
      const res = await produce(producer, topic, batch('one', N_ONE))
      ensure(res.length > 0, 'no send results')
    } catch (e) {
      produceErr = e
    }
  }
  await report.decide('produce', async () => {
    if (produceErr) throw produceErr
    if (topicErr) throw topicErr
    // The admin client creates a 3-partition topic, then lists and describes it.
    const created = `${topic}-admin`
    await admin.createTopics({ topics: [{ topic: created, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true })
    let last = ''
    await waitFor(`${created} to be listed and described with 3 led partitions`, 15000, async () => {
      const listed = (await admin.listTopics()).includes(created)
      const md = await admin.fetchTopicMetadata({ topics: [created] })
      const t = md.topics.find(x => x.name === created)
      const led = t ? t.partitions.filter(p => p.leader >= 0).map(p => p.partitionId).sort() : []
      last = `listed ${listed}, led partitions ${JSON.stringify(led)}`
      return listed && JSON.stringify(led) === '[0,1,2]'
    }).catch(e => {
      throw new Check(`${e.message}: ${last}`)
    })
    return (
      `${N_ONE} keyed messages in sends of 50, acks=-1, all acknowledged without error (offsets checked by the consume ` +
      `check); metadata shows the auto-created topic with ${PARTITIONS} led partitions; admin created a 3-partition ` +
      `topic, listed and described it`
    )
  })

  // idempotent producer: read back (through the group) with the consume check below
  let idemErr = topicErr
  if (!idemErr) {
    try {
      const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
      cleanup.push(() => idem.disconnect())
      await idem.connect()
      await produce(idem, topic, batch('idem', N_IDEM), { chunk: 20 })
      await idem.disconnect()
    } catch (e) {
      idemErr = e
    }
  }

  // compression: one send per codec, read back by one member of <group>-codecs.
  await report.decide('compression', async () => {
    const tried = []
    const failures = []
    const topics = {}
    for (const [codec, type] of Object.entries(CODECS)) {
      tried.push(codec)
      const t = `compat-${CLIENT}-${codec}`
      try {
        await produce(producer, t, batch(codec, N_CODEC, PAD), { chunk: N_CODEC, compression: type })
        topics[codec] = t
      } catch (e) {
        failures.push(`${codec}: produce: ${e.message}`)
      }
    }
    if (Object.keys(topics).length) {
      const reader = new Member(kafka, 'codec-reader', `${group}-codecs`, Object.values(topics))
      cleanup.push(() => reader.consumer.disconnect())
      try {
        await reader.start()
        const want = N_CODEC * Object.keys(topics).length
        await waitFor(`reading back ${want} compressed messages`, 30000, () => reader.records.length >= want).catch(e => {
          failures.push(`${e.message}: got ${reader.records.length}; ${reader.errors.join('; ')}`)
        })
        await sleep(300) // anything beyond `want` already on its way shows up here
        for (const [codec, t] of Object.entries(topics)) {
          try {
            const calls = codecCalls[codec]
            ensure(
              calls.compress > 0 && calls.decompress > 0,
              `${codec} codec called ${calls.compress} times to compress, ${calls.decompress} to decompress`
            )
            const got = reader.records.filter(r => r.topic === t)
            const mine = onceInOrder(t, codec, N_CODEC, got)
            ensure(mine.length === got.length, `${t}: ${got.length - mine.length} unexpected records`)
          } catch (e) {
            failures.push(`${codec}: ${e.message}`)
          }
        }
      } finally {
        await reader.stop().catch(() => {})
      }
    }
    ensure(failures.length === 0, failures.join('; '))
    return (
      `tried ${tried.join(', ')}: each ${N_CODEC} messages sent compressed and read back exactly ` +
      `(batches compressed and decompressed by the codec; ${CODEC_NOTE})`
    )
  })

  // consume: the three members receive everything produced so far; then commit.
  let end = null
  const consumed = await report.decide('consume', async () => {
    if (groupErr) throw new Check(`group never formed: ${groupErr.message}`)
    if (produceErr) throw new Check(`nothing to consume: ${produceErr.message}`)
    const want = N_ONE + (idemErr ? 0 : N_IDEM)
    end = await endOffsets(admin, topic)
    const total = Object.values(end).reduce((a, b) => a + b, 0)
    ensure(total === want, `the topic holds ${total} messages, ${want} were produced`)
    const count = () => members.reduce((n, m) => n + m.records.length, 0)
    await waitFor(`receiving ${want} messages`, 60000, () => count() >= want).catch(e => {
      throw new Check(`${e.message}: got ${count()}; errors ${members.flatMap(m => m.errors).join('; ')}`)
    })
    await sleep(500) // a duplicate already on its way shows up here
    const all = []
    for (const m of members) {
      const mine = m.parts(topic)
      const outside = m.records.filter(r => !mine.has(r.partition))
      ensure(outside.length === 0, `${m.name} received ${outside.length} messages outside its assignment ${show([mine])}`)
      all.push(...m.records)
    }
    contiguous('consumed by the group', all, end)
    onceInOrder('consumed by the group', 'one', N_ONE, all)
    ensure(all.length === want, `received ${all.length} messages, want ${want}`)
    return `3 members (autoCommit=false, fromBeginning=true) received all ${want} messages exactly once`
  })

  await report.decide('idempotence', async () => {
    if (idemErr) throw idemErr
    if (!consumed) throw new Check('kafkajs reads back only through a consumer group, and the group consume failed')
    const all = members.flatMap(m => m.records)
    onceInOrder('idempotent messages read back by the group', 'idem', N_IDEM, all)
    return `idempotent producer (idempotent: true): ${N_IDEM} messages acknowledged, each read back once by the group, in order per partition`
  })

  let commitErr = null
  if (consumed) {
    try {
      for (const m of members) {
        const offsets = [...m.parts(topic)].map(p => ({ topic, partition: p, offset: String(end[p]) }))
        await m.consumer.commitOffsets(offsets)
      }
      say(`committed ${JSON.stringify(end)}`)
    } catch (e) {
      commitErr = new Check(`commitOffsets: ${e.name}: ${e.message}`)
    }
  } else {
    commitErr = new Check('nothing committed: consume failed')
  }

  // groups: one member leaves (disconnect sends LeaveGroup), the other two take over.
  const printedBefore = members.reduce((n, m) => n + m.records.length, 0)
  await report.decide('groups', async () => {
    if (groupErr) throw groupErr
    const before = members.slice(0, 2).map(m => m.assigns)
    const closedAt = Date.now()
    await members[2].stop()
    // Sooner than member-3's session (10 s) could expire: its LeaveGroup did it.
    const left = Math.max(0, closedAt + LEAVE_TIMEOUT_MS - Date.now())
    const two = await waitAssigned('2 members after member-3 left', members.slice(0, 2), topic, left, () =>
      members.slice(0, 2).every((m, i) => m.assigns > before[i])
    )
    return `3 members ${show(three)}; after one left (disconnect, LeaveGroup) 2 members ${show(two)}`
  })

  // Committed offsets, then 300 more messages nobody consumes.
  const state = { topic, group, committed: {}, two: [] }
  const problems = []
  if (commitErr) problems.push(commitErr.message)
  try {
    if (!groupErr) for (const m of members.slice(0, 2)) m.consumer.pause([{ topic }])
    if (!commitErr) {
      const committed = await committedOffsets(admin, group, topic)
      ensure(
        JSON.stringify(committed) === JSON.stringify(end),
        `committed offsets read back (admin.fetchOffsets) ${JSON.stringify(committed)} differ from the consumed end offsets ${JSON.stringify(end)}`
      )
      state.committed = committed
    }
  } catch (e) {
    problems.push(e.message)
  }
  try {
    if (topicErr) throw topicErr
    for (const msg of batch('two', N_TWO)) {
      // One send per message: its result names the message's partition and offset.
      const [r] = await producer.send({ topic, acks: -1, messages: [msg] })
      ensure(r && r.errorCode === 0, `send ${msg.value}: ${JSON.stringify(r)}`)
      state.two.push({ partition: r.partition, offset: Number(r.baseOffset), key: msg.key, value: msg.value })
    }
  } catch (e) {
    problems.push(`producing the 300 'two' messages: ${e.message}`)
  }
  const printedAfter = members.reduce((n, m) => n + m.records.length, 0)
  if (printedBefore !== printedAfter) {
    report.set('groups', 'fail', `${printedAfter - printedBefore} messages delivered after the commit and rebalance`)
  }
  if (problems.length) report.set('commit_resume', 'fail', `phase one: ${problems.join('; ')}`)
  fs.writeFileSync(args.state, JSON.stringify(state, null, 1))
  for (const m of members.slice(0, 2)) await m.stop().catch(() => {})

  report.set(
    'static_membership',
    'n/a',
    `kafkajs ${pkgVersion('kafkajs')} has no static membership (no group.instance.id option; KIP-345 not implemented)`
  )
}

// ---------------------------------------------------------------------------------------
// Phase two

async function phaseTwo(kafka, args, report, cleanup) {
  await report.decide('commit_resume', async () => {
    const { topic, group } = args
    const state = JSON.parse(fs.readFileSync(args.state, 'utf8'))
    ensure(state.two && state.two.length === N_TWO, `the state holds ${state.two ? state.two.length : 0} 'two' messages, want ${N_TWO}`)
    const want = {}
    for (let p = 0; p < PARTITIONS; p++) want[p] = state.committed[p]
    const admin = kafka.admin()
    cleanup.push(() => admin.disconnect())
    await admin.connect()
    const committed = await committedOffsets(admin, group, topic)
    ensure(
      JSON.stringify(committed) === JSON.stringify(want),
      `committed offsets after the restart ${JSON.stringify(committed)} differ from phase one's ${JSON.stringify(want)}`
    )
    const end = await endOffsets(admin, topic)
    const m = new Member(kafka, 'resumer', group, [topic])
    cleanup.push(() => m.consumer.disconnect())
    await m.start()
    const lastOf = p => {
      const rs = m.records.filter(r => r.partition === p)
      return rs.length ? rs[rs.length - 1].offset : -1
    }
    await waitFor('receiving the 300 uncommitted messages', 60000, () => {
      for (let p = 0; p < PARTITIONS; p++) if (end[p] > committed[p] && lastOf(p) !== end[p] - 1) return false
      return true
    }).catch(e => {
      throw new Check(`${e.message}: got ${m.records.length}; errors ${m.errors.join('; ')}`)
    })
    await sleep(500) // re-delivered old messages (a lost commit) already on their way show up here
    await m.stop()
    const got = m.records
    const wantKeys = new Set(state.two.map(recKey))
    const before = got.filter(r => !wantKeys.has(recKey(r)))
    ensure(before.length === 0, `${before.length} messages not among the 300 uncommitted ones (re-delivered from before the commit?), first ${JSON.stringify(before[0])}`)
    const seen = new Set()
    for (const r of got) {
      ensure(!seen.has(recKey(r)), `${JSON.stringify(r)} received twice`)
      seen.add(recKey(r))
    }
    ensure(seen.size === N_TWO, `received ${seen.size} of the ${N_TWO} uncommitted messages`)
    for (let p = 0; p < PARTITIONS; p++) {
      const rs = got.filter(r => r.partition === p)
      for (let i = 1; i < rs.length; i++) ensure(rs[i].offset > rs[i - 1].offset, `partition ${p} out of order`)
      if (rs.length) ensure(rs[0].offset === committed[p], `partition ${p}: resumed at ${rs[0].offset}, committed ${committed[p]}`)
    }
    return (
      `committed offsets ${JSON.stringify(committed)} survived the restart (admin.fetchOffsets); a member resumed there and ` +
      `received exactly the ${N_TWO} uncommitted messages (kafkajs has no auto.offset.reset=none: fromBeginning=true, ` +
      `so a lost commit would show as re-delivery)`
    )
  })
}

// sasl_scram and mtls: N_SECURE keyed messages produced to `<topic>-<kind>` over the
// SASL_SSL (SCRAM-SHA-512) or the SSL (client certificate) listener, then read back by a
// group member (kafkajs has no assign()) over the same listener: each exactly once, in
// order per partition, and nothing else up to the end offsets.
async function phaseSecurity(args, report, cleanup) {
  const ca = [fs.readFileSync(args.ca)]
  const listeners = [
    {
      cap: 'sasl_scram',
      kind: 'sasl',
      bootstrap: args['sasl-bootstrap'],
      security: {
        ssl: { ca },
        sasl: { mechanism: 'scram-sha-512', username: args['scram-user'], password: args['scram-password'] },
      },
      how: `SASL_SSL, SCRAM-SHA-512 as ${args['scram-user']}`,
    },
    {
      cap: 'mtls',
      kind: 'mtls',
      bootstrap: args['mtls-bootstrap'],
      security: { ssl: { ca, cert: fs.readFileSync(args['client-cert']), key: fs.readFileSync(args['client-key']) } },
      how: 'SSL with a client certificate (ssl.client.auth=required)',
    },
  ]
  for (const { cap, kind, bootstrap, security, how } of listeners) {
    await report.decide(cap, async () => {
      const kafka = makeKafka(bootstrap, security)
      const topic = `${args.topic}-${kind}`
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      cleanup.push(() => producer.disconnect())
      await producer.connect()
      await produce(producer, topic, batch(kind, N_SECURE))
      await producer.disconnect()
      const admin = kafka.admin()
      cleanup.push(() => admin.disconnect())
      await admin.connect()
      await ensureTopic(admin, topic)
      const end = await endOffsets(admin, topic)
      await admin.disconnect()
      const m = new Member(kafka, `${kind}-reader`, `${args.group}-${kind}`, [topic])
      cleanup.push(() => m.consumer.disconnect())
      await m.start()
      await waitFor(`reading the ${N_SECURE} messages back`, 30000, () => m.records.length >= N_SECURE).catch(e => {
        throw new Check(`${e.message}: got ${m.records.length}; errors ${m.errors.join('; ')}`)
      })
      await sleep(300) // anything unexpected already on its way shows up here
      await m.stop()
      onceInOrder(`${kind} read back`, kind, N_SECURE, m.records)
      contiguous(`${kind} read back`, m.records, end)
      return `${N_SECURE} keyed messages produced and read back (a group member) over ${how}`
    })
  }
}

// ---------------------------------------------------------------------------------------

async function main() {
  let args
  try {
    args = parseArgs(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`${e.message}\n`)
    process.exit(2)
  }
  const report = new Report(args.phase)
  const cleanup = []
  const timer = setTimeout(() => {
    say(`deadline of ${args.deadline}s reached`)
    report.emit(`not decided within the program's ${args.deadline}s deadline`)
    process.exit(1)
  }, args.deadline * 1000)
  say(`kafkajs ${pkgVersion('kafkajs')}, phase ${args.phase}, against ${args.bootstrap}`)
  try {
    await zstd.init()
    const kafka = makeKafka(args.bootstrap)
    if (args.phase === 'one') await phaseOne(kafka, args, report, cleanup)
    else if (args.phase === 'two') await phaseTwo(kafka, args, report, cleanup)
    else await phaseSecurity(args, report, cleanup)
  } catch (e) {
    say(`stopped by ${e.name}: ${e.message}`)
    report.emit(`not checked: the program stopped early (${e.name}: ${e.message})`)
  }
  for (const f of cleanup.reverse()) {
    await Promise.race([Promise.resolve().then(f).catch(() => {}), sleep(5000)])
  }
  clearTimeout(timer)
  report.emit('not checked')
  process.exit(0)
}

process.on('unhandledRejection', e => {
  process.stderr.write(`unhandled rejection: ${e && e.stack}\n`)
})

main()
