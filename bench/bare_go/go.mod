module kubegate.dev/bench/barego

go 1.22
