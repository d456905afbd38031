import { runMain } from "@machina/runtime";
import { computeService } from "./compute-service";

runMain(computeService);
