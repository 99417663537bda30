CREATE TABLE `usage_flushes` (
	`batch_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`events` integer NOT NULL,
	`flushed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `usage_hourly` (
	`tenant_id` text NOT NULL,
	`model` text NOT NULL,
	`hour` integer NOT NULL,
	`requests` integer NOT NULL,
	`prompt_tokens` integer NOT NULL,
	`completion_tokens` integer NOT NULL,
	`cached_tokens` integer NOT NULL,
	`estimated_requests` integer NOT NULL,
	`failed_requests` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `model`, `hour`)
);
--> statement-breakpoint
ALTER TABLE `models` ADD `vtc_headroom` real DEFAULT 0.1 NOT NULL;--> statement-breakpoint
ALTER TABLE `tenants` ADD `rpm_limit` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `tpm_limit` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `token_budget` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `budget_period` text DEFAULT 'month' NOT NULL;--> statement-breakpoint
ALTER TABLE `tenants` ADD `default_max_tokens` integer;