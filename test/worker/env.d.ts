declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../worker/index");
    durableNamespaces: "PoolObject" | "TenantLedger";
  }
  interface Env {
    DB: D1Database;
    POOL: DurableObjectNamespace<import("../../worker/pool/pool-object").PoolObject>;
    LEDGER: DurableObjectNamespace<import("../../worker/tenants/tenant-ledger").TenantLedger>;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    ADMIN_TOKEN: string;
    NODE_SECRET_KEY: string;
  }
}
