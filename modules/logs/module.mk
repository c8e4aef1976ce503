logs_SRCS := $(wildcard modules/logs/*.c)
logs_PKGS :=
