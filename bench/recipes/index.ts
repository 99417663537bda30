/** Every recipe, by name (`switchyard bench recipe <name>`). A new recipe is one file plus one line here. */
import type { Recipe } from "./common";
import { fairnessRecipe } from "./fairness";
import { kvOffloadRecipe } from "./kv-offload";
import { multiTurnRecipe } from "./multi-turn";
import { routingRecipe } from "./routing";

export const RECIPES: readonly Recipe[] = [routingRecipe, kvOffloadRecipe, multiTurnRecipe, fairnessRecipe];
