proxy_SRCS := $(wildcard modules/proxy/*.c)
proxy_PKGS := libnghttp2 jansson
proxy_LIBS := -lm
