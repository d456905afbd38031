import { runMain } from "@machina/runtime";
import { dataService } from "./data-service";

runMain(dataService);
