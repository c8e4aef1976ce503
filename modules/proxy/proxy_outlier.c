/*
 * proxy_outlier: passive outlier ejection. Every exchange with an endpoint
 * reports whether it failed; after consecutive_failures in a row the
 * endpoint is ejected (skipped by every endpoint choice) for
 * base_ejection_time x the number of times it was ejected, capped by
 * max_ejection_time. The multiplier decays by one for each interval the
 * endpoint spends back in service, so an endpoint that failed once long
 * ago is not punished like one failing all the time.
 *
 * Each worker judges its own endpoints from its own traffic: no state is
 * shared between threads, and what a worker ejects is what it saw fail.
 * An ejection ends by time alone (proxy_endpoint_usable compares with
 * uv_now); the cluster's timer only notices it for the gauge and the log.
 */
#include <stdarg.h>
#include <stdio.h>

#include "proxy.h"

uint64_t proxy_outlier_ejection_ms(uint64_t base, uint64_t max, uint32_t times)
{
    if (times == 0)
        times = 1;
    if (base > max)
        return max;
    /* base x times without overflow: compare with max first. */
    if (base != 0 && times > max / base)
        return max;
    uint64_t t = base * times;
    return t < max ? t : max;
}

bool proxy_outlier_may_eject(size_t n, size_t n_ejected, int64_t max_percent)
{
    if (max_percent <= 0 || n_ejected >= n)
        return false;
    if (n_ejected == 0)
        return true; /* at least one, as Envoy does */
    return (uint64_t)(n_ejected + 1) * 100 <= (uint64_t)max_percent * n;
}

uint32_t proxy_outlier_decay(uint32_t times, uint64_t *mark, uint64_t now, uint64_t interval)
{
    if (times == 0 || interval == 0 || now <= *mark)
        return times;
    uint64_t k = (now - *mark) / interval;
    if (k >= times) {
        *mark = now;
        return 0;
    }
    *mark += k * interval;
    return times - (uint32_t)k;
}

void proxy_outlier_log(struct proxy_worker *pw, enum otr_log_level level, const char *fmt, ...)
{
    struct proxy_state *st = pw->st;
    uint64_t now = uv_now(pw->loop);
    if (now - pw->log_window_ms >= 10000 || pw->log_window_ms == 0) {
        if (pw->log_suppressed)
            st->host->log(st->ctx, OTR_LOG_WARN, "%u endpoint health messages suppressed in the last 10 s",
                          pw->log_suppressed);
        pw->log_window_ms = now ? now : 1;
        pw->log_count = pw->log_suppressed = 0;
    }
    if (pw->log_count >= 20) {
        pw->log_suppressed++;
        return;
    }
    pw->log_count++;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    st->host->log(st->ctx, level, "%s", line);
}

void proxy_outlier_gauge(struct proxy_wcluster *wc)
{
    if (!wc->s_healthy)
        return;
    uint64_t now = uv_now(wc->pw->loop);
    size_t usable = 0;
    for (size_t i = 0; i < wc->n_eps; i++)
        usable += proxy_endpoint_usable(wc->eps[i], now);
    /* Each worker's shard holds its share, so the sum over workers (what
     * the registry shows) is the mean count of usable endpoints. */
    wc->pw->st->host->gauge_set(wc->s_healthy, (double)usable / wc->pw->st->n_workers);
}

/* Arms the cluster's timer for the earliest end of an ejection. */
static void outlier_timer_arm(struct proxy_wcluster *wc, uint64_t now);

static void outlier_on_timer(uv_timer_t *t)
{
    struct proxy_wcluster *wc = t->data;
    uint64_t now = uv_now(wc->pw->loop);
    for (size_t i = 0; i < wc->n_eps; i++) {
        struct proxy_endpoint *ep = wc->eps[i];
        if (ep->ejected_until && ep->ejected_until <= now) {
            ep->ejected_until = 0;
            proxy_outlier_log(wc->pw, OTR_LOG_INFO, "cluster %s: endpoint %s back from ejection", wc->c->conf->name,
                              ep->addr.text);
        }
    }
    proxy_outlier_gauge(wc);
    outlier_timer_arm(wc, now);
}

static void outlier_timer_arm(struct proxy_wcluster *wc, uint64_t now)
{
    uint64_t next = 0;
    for (size_t i = 0; i < wc->n_eps; i++) {
        uint64_t u = wc->eps[i]->ejected_until;
        if (u && (!next || u < next))
            next = u;
    }
    if (next && wc->outlier_timer_open)
        uv_timer_start(&wc->outlier_timer, outlier_on_timer, next > now ? next - now : 0, 0);
}

static void eject(struct proxy_endpoint *ep, uint64_t now)
{
    struct proxy_wcluster *wc = ep->wc;
    const struct proxy_outlier_conf *oc = &wc->c->conf->outlier;
    ep->times_ejected = proxy_outlier_decay(ep->times_ejected, &ep->decay_mark, now, oc->interval);
    if (ep->times_ejected < UINT32_MAX)
        ep->times_ejected++;
    uint64_t ms = proxy_outlier_ejection_ms(oc->base_ejection_time, oc->max_ejection_time, ep->times_ejected);
    ep->ejected_until = now + ms;
    ep->decay_mark = ep->ejected_until; /* decay counts from its return */
    ep->consecutive_failures = 0;
    if (wc->s_ejections)
        wc->pw->st->host->counter_add(wc->s_ejections, 1);
    proxy_outlier_log(wc->pw, OTR_LOG_WARN, "cluster %s: endpoint %s ejected for %llu ms (%u failures in a row, "
                      "ejection %u)", wc->c->conf->name, ep->addr.text, (unsigned long long)ms,
                      (unsigned)oc->consecutive_failures, ep->times_ejected);
    proxy_outlier_gauge(wc);
    outlier_timer_arm(wc, now);
}

void proxy_outlier_report(struct proxy_endpoint *ep, bool failed)
{
    struct proxy_wcluster *wc = ep->wc;
    const struct proxy_outlier_conf *oc = &wc->c->conf->outlier;
    if (oc->consecutive_failures <= 0 || ep->removed)
        return; /* off, or a request finishing on an endpoint discovery removed */
    uint64_t now = uv_now(wc->pw->loop);
    if (now < ep->ejected_until)
        return; /* requests sent before the ejection finishing: already judged */
    if (!failed) {
        ep->consecutive_failures = 0;
        return;
    }
    if (++ep->consecutive_failures < (uint64_t)oc->consecutive_failures)
        return;
    size_t n_ejected = 0;
    for (size_t i = 0; i < wc->n_eps; i++)
        n_ejected += now < wc->eps[i]->ejected_until;
    if (!proxy_outlier_may_eject(wc->n_eps, n_ejected, oc->max_ejection_percent)) {
        /* Held back by max_ejection_percent: the next failure asks again. */
        ep->consecutive_failures = (uint32_t)oc->consecutive_failures - 1;
        return;
    }
    eject(ep, now);
}

static void outlier_timer_on_close(uv_handle_t *h)
{
    struct proxy_wcluster *wc = h->data;
    wc->outlier_timer_open = false;
    wc->pw->n_health_handles--;
    proxy_worker_maybe_drained(wc->pw);
}

void proxy_outlier_start(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        if (wc->c->conf->outlier.consecutive_failures <= 0)
            continue;
        uv_timer_init(pw->loop, &wc->outlier_timer);
        wc->outlier_timer.data = wc;
        wc->outlier_timer_open = true;
        pw->n_health_handles++;
    }
}

void proxy_outlier_stop(struct proxy_worker *pw)
{
    for (size_t i = 0; i < pw->st->n_clusters; i++) {
        struct proxy_wcluster *wc = &pw->clusters[i];
        if (wc->outlier_timer_open && !uv_is_closing((uv_handle_t *)&wc->outlier_timer))
            uv_close((uv_handle_t *)&wc->outlier_timer, outlier_timer_on_close);
    }
}
