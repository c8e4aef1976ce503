metrics_SRCS := $(wildcard modules/metrics/*.c)
metrics_PKGS :=
metrics_LIBS := -lpthread
