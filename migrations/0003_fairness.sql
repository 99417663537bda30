ALTER TABLE `models` ADD `admission_policy` text DEFAULT 'vtc' NOT NULL;--> statement-breakpoint
ALTER TABLE `models` ADD `max_queue_wait_ms` integer DEFAULT 30000 NOT NULL;--> statement-breakpoint
ALTER TABLE `models` ADD `node_limit` integer;--> statement-breakpoint
ALTER TABLE `models` ADD `vtc_input_weight` real DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `models` ADD `vtc_output_weight` real DEFAULT 2 NOT NULL;--> statement-breakpoint
ALTER TABLE `tenants` ADD `weight` real DEFAULT 1 NOT NULL;