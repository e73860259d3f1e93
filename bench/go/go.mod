module echo-server/bench/go

go 1.19
