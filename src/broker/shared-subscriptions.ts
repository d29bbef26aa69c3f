// MQTT shared subscriptions (`$share/<group>/<filter>`) on top of aedes, which has none of its own: aedes
// would store the literal filter '$share/…', which no topic ever matches. Here the broker subscribes once per
// (group, filter) to the real filter and hands each message to one connected member, round robin.
import type { Aedes, AedesPublishPacket, Client } from 'aedes';

const PREFIX = '$share/';

type Deliver = (packet: AedesPublishPacket, cb: () => void) => void;

interface Group {
  /** The `$share/…` topic as the members subscribed it: the key of their aedes subscription. */
  shareTopic: string;
  filter: string;
  members: Client[];
  next: number;
  route: Deliver;
}

/** `$share/g/a/b` → { group: 'g', filter: 'a/b' }; undefined when not a well-formed shared subscription. */
export function parseShareTopic(topic: string): { group: string; filter: string } | undefined {
  if (!topic.startsWith(PREFIX)) return undefined;
  const rest = topic.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  const group = rest.slice(0, slash);
  if (/[+#]/.test(group)) return undefined;
  return { group, filter: rest.slice(slash + 1) };
}

// aedes keeps each client's subscriptions (with the deliver function it made for it) in client.subscriptions.
type ClientSubs = Record<string, { func: Deliver; qos: number } | undefined>;
const subsOf = (c: Client): ClientSubs => (c as unknown as { subscriptions: ClientSubs }).subscriptions;
const isLive = (c: Client): boolean => !(c as unknown as { closed: boolean }).closed;
const isPersistent = (c: Client): boolean => (c as unknown as { clean: boolean }).clean === false;
interface Persistence {
  outgoingEnqueue(sub: { clientId: string }, packet: AedesPublishPacket): Promise<void>;
}

export class SharedSubscriptions {
  private readonly groups = new Map<string, Group>();
  /** Messages handed to a group with no live member (the publisher's retransmission covers them). */
  undeliverable = 0;

  private broker!: Aedes;

  /** Wires the groups to a broker; its authorizeSubscribe must call join() for `$share/…` subscriptions. */
  attach(broker: Aedes): void {
    this.broker = broker;
    broker.on('unsubscribe', (topics, client) => {
      for (const t of topics) this.leave(t, client);
    });
    broker.on('clientDisconnect', (client) => {
      for (const g of [...this.groups.values()]) this.leave(g.shareTopic, client);
    });
  }

  /** Called from authorizeSubscribe for every `$share/…` subscription (also when a session is restored). */
  join(shareTopic: string, client: Client): void {
    const parsed = parseShareTopic(shareTopic);
    if (!parsed) return;
    let g = this.groups.get(shareTopic);
    if (!g) {
      const group: Group = { shareTopic, filter: parsed.filter, members: [], next: 0, route: (p, cb) => this.route(group, p, cb) };
      g = group;
      this.groups.set(shareTopic, g);
      // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match $-topics
      const wild = parsed.filter.startsWith('+') || parsed.filter.startsWith('#');
      const route = g.route;
      g.route = wild ? (p, cb) => (p.topic.startsWith('$') ? cb() : route(p, cb)) : route;
      this.broker.subscribe(parsed.filter, g.route, () => {});
    }
    // a reconnecting client with the same id is a new Client object: replace, never duplicate
    g.members = g.members.filter((m) => m !== client && m.id !== client.id);
    g.members.push(client);
  }

  private leave(shareTopic: string, client: Client): void {
    const g = this.groups.get(shareTopic);
    if (!g) return;
    g.members = g.members.filter((m) => m !== client);
    if (g.members.length === 0) {
      this.groups.delete(shareTopic);
      this.broker.unsubscribe(g.filter, g.route, () => {});
    }
  }

  private route(g: Group, packet: AedesPublishPacket, cb: () => void): void {
    for (let tries = 0; tries < g.members.length; tries++) {
      const m = g.members[g.next % g.members.length]!;
      g.next = (g.next + 1) % Math.max(1, g.members.length);
      const sub = subsOf(m)[g.shareTopic];
      if (!sub || !isLive(m)) continue;
      // aedes delivers QoS > 0 to a persistent session only from its outgoing queue, which its publish path
      // fills by matching stored filters, and '$share/…' matches nothing: enqueue for the chosen member here
      if (packet.qos > 0 && sub.qos > 0 && isPersistent(m)) {
        const persistence = (this.broker as unknown as { persistence: Persistence }).persistence;
        persistence.outgoingEnqueue({ clientId: m.id }, packet).then(() => sub.func(packet, cb), () => cb());
        return;
      }
      return sub.func(packet, cb);
    }
    this.undeliverable++;
    cb();
  }

  memberCount(shareTopic: string): number {
    return this.groups.get(shareTopic)?.members.length ?? 0;
  }
}
