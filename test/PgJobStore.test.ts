import { afterAll } from "@effect/vitest"
import { jobStoreConformance } from "./jobStoreConformance.js"
import { makeTestClock, testStoreLayer } from "./pgTestStore.js"

const clock = makeTestClock()
afterAll(clock.drop)

jobStoreConformance("PgJobStore", testStoreLayer({ clock }), clock)
