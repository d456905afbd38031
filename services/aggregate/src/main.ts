import { runMain } from "@machina/runtime";
import { aggregateService } from "./aggregate-service";

runMain(aggregateService);
