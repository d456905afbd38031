import { runMain } from "@machina/runtime";
import { vertexService } from "./vertex-service";

runMain(vertexService);
