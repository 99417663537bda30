#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so operators need no build step.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
