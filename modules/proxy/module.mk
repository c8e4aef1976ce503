proxy_SRCS := $(wildcard modules/proxy/*.c)
proxy_PKGS :=
proxy_LIBS := -lm
