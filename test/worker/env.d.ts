declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../worker/index");
    durableNamespaces: "PoolObject";
  }
  interface Env {
    DB: D1Database;
    POOL: DurableObjectNamespace<import("../../worker/pool/pool-object").PoolObject>;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    ADMIN_TOKEN: string;
    NODE_SECRET_KEY: string;
  }
}
