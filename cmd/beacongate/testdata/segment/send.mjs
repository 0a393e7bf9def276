// Sends the calls described on stdin with @segment/analytics-node, as an
// application would, and prints what the SDK saw as one JSON line. Driven
// by cmd/beacongate/segment_sdk_test.go.
import { Analytics } from '@segment/analytics-node'

const input = JSON.parse(await new Promise((resolve) => {
  let s = ''
  process.stdin.on('data', (d) => { s += d })
  process.stdin.on('end', () => resolve(s))
}))

const analytics = new Analytics({
  writeKey: input.writeKey,
  host: input.host,
  flushAt: 20,
  flushInterval: 200,
  maxRetries: input.maxRetries,
  httpRequestTimeout: 5000,
})
const seen = { requests: 0, statuses: [], errors: 0 }
analytics.on('http_request', () => { seen.requests++ })
analytics.on('http_response', (r) => { seen.statuses.push(r.status) })
analytics.on('error', () => { seen.errors++ })

for (const c of input.calls) {
  const ids = {}
  if (c.userId) ids.userId = c.userId
  if (c.anonymousId) ids.anonymousId = c.anonymousId
  const common = { ...ids, messageId: c.messageId }
  switch (c.type) {
    case 'identify': analytics.identify({ ...common, traits: c.props }); break
    case 'page': analytics.page({ ...common, name: c.name, properties: c.props }); break
    case 'group': analytics.group({ ...common, groupId: c.groupId, traits: c.props }); break
    case 'track': analytics.track({ ...common, event: c.event, properties: c.props }); break
    default: throw new Error('unknown call ' + c.type)
  }
}
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify(seen))
