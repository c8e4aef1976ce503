/*
 * notify: tells a service manager about the agent's state with the
 * sd_notify protocol (a datagram to $NOTIFY_SOCKET; no libsystemd needed):
 * READY=1 once serving, RELOADING=1 / READY=1 around a reload, STOPPING=1
 * at shutdown, and after a hot upgrade MAINPID=<new pid> from the new
 * process, so that systemd (Type=notify, NotifyAccess=all) follows it. Does
 * nothing when NOTIFY_SOCKET is unset.
 */
#ifndef OTR_NOTIFY_H
#define OTR_NOTIFY_H

/* Sends one state message, e.g. "READY=1". Main thread. */
void otr_notify(const char *state);

#endif
