/*
 * upgrade: hot binary upgrade without refusing a connection.
 *
 * The running agent (old) starts its own binary again with the same
 * arguments and a SOCK_SEQPACKET socket on fd 3 (OUTRIDER_UPGRADE_FD=3). It
 * sends every listening socket over it (SCM_RIGHTS), one message per
 * listener: "L\t<kind>\t<count>\t<name>\t<address>\t<bound>", then "E". The
 * new process adopts them instead of binding, starts, and once serving
 * sends "R <pid>". Only then does the old one drain and exit; if the new
 * one exits or does not become ready in time, the old one keeps serving and
 * says why.
 *
 * The control socket (control_socket in the config) accepts one line
 * commands, "upgrade" and "reload", and answers "ok ..." or "failed: ...".
 */
#ifndef OTR_UPGRADE_H
#define OTR_UPGRADE_H

#include "agent.h"

/* Old side: starts an upgrade; done(arg, 0 or error, message) runs when the
 * new process is ready or the attempt failed (main thread). */
int otr_upgrade_start(struct otr_agent *a, void (*done)(void *arg, int status, const char *msg), void *arg);

/* New side: if started by an upgrade, receives and adopts the listeners.
 * Returns 0 (also when not an upgrade) or an error (logged). */
int otr_upgrade_receive(struct otr_agent *a);
/* New side: tells the old process this one is serving. */
void otr_upgrade_announce_ready(struct otr_agent *a);

/* The control socket, on the main loop. */
int otr_control_start(struct otr_agent *a, otr_listener *l);
void otr_control_stop(struct otr_agent *a);
/* Client: sends cmd to the agent's control socket and prints its answer.
 * Returns the process exit code. */
int otr_control_request(const char *path, const char *cmd, uint64_t timeout_ms);

#endif
