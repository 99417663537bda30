# What one GPU node runs, rendered from inputs: the agent config (JSON the agent's own schema
# validates), systemd units for the engine, agent, cache server and cloudflared, and the cloud-init
# document that writes them and runs the bootstrap script. Secrets never appear here: units fetch
# them at start from the cloud's secret store (var.secret_commands) into /run, which is tmpfs.

locals {
  install_dir       = "/opt/switchyard"
  state_dir         = "/var/lib/switchyard"
  lib_dir           = "/usr/local/lib/switchyard"
  agent_config_path = "/etc/switchyard/agent.json"
  node_bin          = "/usr/local/bin/node"
  switchyard_cli    = "${local.install_dir}/bin/switchyard.mjs"

  kv_events_port    = 5557
  hf_model          = coalesce(var.engine.hf_model, var.engine.model)
  served_model_name = coalesce(var.engine.served_model_name, local.hf_model)
  gguf_path         = "${local.state_dir}/models/model.gguf"

  # One agent engine entry per kind. Optional fields are null here and dropped below: the agent's
  # schema takes a missing field for its default but refuses null.
  engine_entries = {
    vllm = {
      kind            = "openai"
      model           = var.engine.model
      url             = "http://127.0.0.1:${var.engine.port}"
      servedModelName = local.served_model_name
      # vLLM >= 0.9 keys its prefix cache by cache_salt: no KV is shared between tenants.
      cacheSalt      = true
      maxConcurrency = var.engine.max_concurrency
      kvEvents       = var.engine.kv_events ? { endpoint = "tcp://127.0.0.1:${local.kv_events_port}" } : null
    }
    openai = {
      kind           = "openai"
      model          = var.engine.model
      url            = var.engine.url
      maxConcurrency = var.engine.max_concurrency
    }
    llamacpp = {
      kind              = "llamacpp"
      model             = var.engine.model
      modelPath         = var.engine.gguf_url == null ? null : local.gguf_path
      generatedModelDir = "${local.state_dir}/models"
      contextSize       = var.engine.context_size
      sequences         = var.engine.sequences
      threads           = var.engine.threads
      # "off" is the schema's default (false); writing false here would turn into the string "false",
      # since a conditional's two results get one type.
      gpu = var.engine.gpu == "off" ? null : var.engine.gpu
    }
    sim = {
      kind           = "sim"
      model          = var.engine.model
      timeScale      = var.engine.time_scale
      maxConcurrency = var.engine.max_concurrency
    }
  }
  engine_entry = { for k, v in local.engine_entries[var.engine.kind] : k => v if v != null }

  # nodeSecret (and previousNodeSecret during a rotation) and advertiseUrl come from the
  # environment the agent unit loads: SWITCHYARD_NODE_SECRET, SWITCHYARD_ADVERTISE_URL.
  agent_config = {
    nodeId = var.node_id
    region = var.region
    # Every interface: the region's cloudflared replicas reach agents over the private network.
    listen = { host = "0.0.0.0", port = var.agent.port }
    edge = {
      url                 = var.edge_url
      heartbeatIntervalMs = var.agent.heartbeat_interval_ms
    }
    engines  = [local.engine_entry]
    queue    = { maxWaiting = var.agent.max_waiting }
    logLevel = var.agent.log_level
  }
  agent_config_json = jsonencode(local.agent_config)

  # Flags of `switchyard cache-server` (cli/commands/cache-server.ts), kept here only.
  cache_server_args = [
    "--host", "0.0.0.0",
    "--port", tostring(var.cache_server.port),
    "--capacity", var.cache_server.capacity,
    "--policy", var.cache_server.policy,
    "--metrics-host", "127.0.0.1",
    "--metrics-port", tostring(var.cache_server.metrics_port),
    "--max-value", var.cache_server.max_value,
    "--max-connections", tostring(var.cache_server.max_connections),
    "--shards", tostring(var.cache_server.shards),
  ]

  vllm_args = concat(
    [
      "--model", local.hf_model,
      "--served-model-name", local.served_model_name,
      "--host", "0.0.0.0",
      "--port", tostring(var.engine.port),
      "--enable-prefix-caching",
      "--enable-prompt-tokens-details",
    ],
    var.engine.kv_events ? ["--kv-events-config", jsonencode({ enable_kv_cache_events = true, publisher = "zmq", endpoint = "tcp://*:${local.kv_events_port}" })] : [],
    var.engine.extra_args,
  )
  # The container publishes its ports on loopback only: the agent, which checks the edge's
  # signature, is the node's one way in.
  vllm_docker_args = concat(
    [
      "--rm", "--name", "switchyard-engine", "--gpus", "all", "--ipc", "host",
      "--publish", "127.0.0.1:${var.engine.port}:${var.engine.port}",
      "--env-file", "/run/switchyard/engine.env",
      "--volume", "${local.state_dir}/hf-cache:/root/.cache/huggingface",
    ],
    var.engine.kv_events ? ["--publish", "127.0.0.1:${local.kv_events_port}:${local.kv_events_port}"] : [],
    [var.engine.image],
    local.vllm_args,
  )

  runs_vllm         = var.engine.kind == "vllm"
  runs_cloudflared  = var.secret_commands.tunnel_token != null
  llamacpp_gpu      = var.engine.kind == "llamacpp" && var.engine.gpu != "off"
  systemd_services  = concat(local.runs_cloudflared ? ["cloudflared"] : [], local.runs_vllm ? ["switchyard-engine"] : [], var.cache_server.enabled ? ["switchyard-cache-server"] : [], ["switchyard-agent"])
  systemd_unit_args = { node_bin = local.node_bin, switchyard_cli = local.switchyard_cli, lib_dir = local.lib_dir, state_dir = local.state_dir }

  units = merge(
    {
      "switchyard-agent.service" = templatefile("${path.module}/templates/switchyard-agent.service.tftpl", merge(local.systemd_unit_args, {
        agent_config_path = local.agent_config_path
        after             = join(" ", [for s in local.systemd_services : "${s}.service" if s != "switchyard-agent"])
      }))
    },
    var.cache_server.enabled ? {
      "switchyard-cache-server.service" = templatefile("${path.module}/templates/switchyard-cache-server.service.tftpl", merge(local.systemd_unit_args, {
        args = join(" ", local.cache_server_args)
      }))
    } : {},
    local.runs_vllm ? {
      "switchyard-engine.service" = templatefile("${path.module}/templates/switchyard-engine.service.tftpl", merge(local.systemd_unit_args, {
        docker_args = join(" ", [for a in local.vllm_docker_args : "'${a}'"])
      }))
    } : {},
    local.runs_cloudflared ? {
      "cloudflared.service" = templatefile("${path.module}/templates/cloudflared.service.tftpl", local.systemd_unit_args)
    } : {},
  )

  fetch_secrets_script = templatefile("${path.module}/templates/fetch-secrets.sh.tftpl", {
    node_secret_command  = var.secret_commands.node_secret
    tunnel_token_command = coalesce(var.secret_commands.tunnel_token, "false")
    hf_token_command     = coalesce(var.secret_commands.hf_token, "true")
    private_ip_command   = var.private_ip_command
    agent_port           = var.agent.port
    cache_server_port    = var.cache_server.enabled ? tostring(var.cache_server.port) : ""
    node_bin             = local.node_bin
  })

  bootstrap_script = templatefile("${path.module}/templates/bootstrap.sh.tftpl", {
    node_version        = var.node_version
    cloudflared_version = var.cloudflared_version
    install_cloudflared = local.runs_cloudflared
    git_url             = var.switchyard_source.git_url
    git_ref             = var.switchyard_source.git_ref
    install_dir         = local.install_dir
    state_dir           = local.state_dir
    engine_kind         = var.engine.kind
    vllm_image          = var.engine.image
    llamacpp_gpu        = local.llamacpp_gpu
    gguf_url            = var.engine.gguf_url == null ? "" : var.engine.gguf_url
    gguf_path           = local.gguf_path
    services            = join(" ", local.systemd_services)
    setup_script        = var.setup_script
  })

  write_files = concat(
    [
      { path = local.agent_config_path, permissions = "0644", owner = "root:root", content = "${local.agent_config_json}\n" },
      { path = "${local.lib_dir}/fetch-secrets.sh", permissions = "0755", owner = "root:root", content = local.fetch_secrets_script },
      { path = "${local.lib_dir}/bootstrap.sh", permissions = "0755", owner = "root:root", content = local.bootstrap_script },
    ],
    [for name in sort(keys(local.units)) : { path = "/etc/systemd/system/${name}", permissions = "0644", owner = "root:root", content = local.units[name] }],
  )

  # JSON is YAML: cloud-init reads this document as is, and the offline tests in test/infra parse
  # it without a YAML library.
  cloud_config = {
    write_files = local.write_files
    runcmd      = [["${local.lib_dir}/bootstrap.sh"]]
  }
  cloud_init = "#cloud-config\n${jsonencode(local.cloud_config)}\n"
}
