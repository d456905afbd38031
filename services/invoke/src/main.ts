import { runMain } from "@machina/runtime";
import { invokeService } from "./invoke-service";

runMain(invokeService);
