proxy_SRCS := $(wildcard modules/proxy/*.c)
proxy_PKGS := libnghttp2
proxy_LIBS := -lm
