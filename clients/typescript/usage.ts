// A small typed client over fetch, written against the generated types: if the OpenAPI
// document loses a schema, renames a field or turns a named type into an anonymous one,
// `tsc --noEmit` fails in CI.
import type { components, operations, paths } from "./schema";

type Schemas = components["schemas"];
type Deal = Schemas["DealRead"];
type Problem = Schemas["Problem"];
type EventPage = Schemas["EventPage"];
type UpsertResult = Schemas["BatchUpsertResult"];
type StageKind = Schemas["StageKind"];

export class CrmClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const response = await fetch(this.baseUrl + path, {
      method,
      headers: { Authorization: `Bearer ${this.apiKey}`, "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) {
      const problem = (await response.json()) as Problem;
      throw new Error(`${problem.status} ${problem.title}: ${problem.detail ?? ""}`);
    }
    return (await response.json()) as T;
  }

  createDeal(body: Schemas["DealCreate"], idempotencyKey: string): Promise<Deal> {
    return this.call<Deal>("POST", "/v1/deals", body, { "Idempotency-Key": idempotencyKey });
  }

  moveDeal(id: string, body: Schemas["DealMove"], version: number): Promise<Deal> {
    return this.call<Deal>("POST", `/v1/deals/${id}/move`, body, { "If-Match": `"${version}"` });
  }

  wonDeals(after?: string): Promise<EventPage> {
    const query: NonNullable<operations["events_list"]["parameters"]["query"]> = { types: "deal.won", limit: 100 };
    if (after !== undefined) query.after = after;
    const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
    return this.call<EventPage>("GET", `/v1/events?${search}`);
  }

  upsertContacts(items: Schemas["ContactCreate"][]): Promise<UpsertResult> {
    return this.call<UpsertResult>("POST", "/v1/contacts/batch/upsert", { items });
  }
}

export function totalOfLines(deal: Deal): number {
  return deal.line_items.reduce((sum, line) => sum + Number(line.amount), 0);
}

export function isClosed(kind: StageKind): boolean {
  return kind === "won" || kind === "lost";
}

export async function syncWonDeals(client: CrmClient, cursor: string | undefined): Promise<string> {
  const page = await client.wonDeals(cursor);
  for (const event of page.data) {
    const deal = event.data as unknown as Deal;
    const sequence: number = event.sequence;
    console.log(sequence, deal.name, totalOfLines(deal), isClosed(deal.status));
  }
  return page.next_cursor;
}

// Every path the client uses exists in the document.
const used: (keyof paths)[] = ["/v1/deals", "/v1/deals/{deal_id}/move", "/v1/events", "/v1/contacts/batch/upsert"];
export default used;
