module ffnet/tests/progs/gonet

go 1.19
