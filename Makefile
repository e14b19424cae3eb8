.PHONY: demo test test-fast lint dev bench

demo:       ## materialize sources + final_task + leaderboard on synthetic data
	scripts/demo.sh

test:       ## the whole test suite (what CI runs)
	scripts/test.sh

test-fast:  ## skip the end-to-end and integration tests
	scripts/test.sh -m "not slow and not integration"

lint:
	. scripts/_env.sh && ruff check .

dev:        ## the Dagster UI on http://127.0.0.1:3000
	. scripts/_env.sh && dagster dev -m als_assets.definitions -h 127.0.0.1 -p 3000

bench:
	. scripts/_env.sh && bash benchmarks/run_all.sh
