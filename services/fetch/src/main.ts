import { runMain } from "@machina/runtime";
import { fetchService } from "./fetch-service";

runMain(fetchService);
