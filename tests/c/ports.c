/* Ports across threads and the poller's fd protocol: a receiver blocked
** without a time limit wakes for a message, for a close and for
** mesh_shutdown; a poller's fd becomes readable when a port has a message
** and the drain-then-wait loop gets every message with its tag.
*/
#include "testutil.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>

typedef struct {
    mesh_port_t port;
    int32_t rc;
    mesh_msg_t msg;
    char err[256];
} recv_job;

static void *blocked_recv(void *arg) {
    recv_job *j = arg;
    j->rc = mesh_port_recv(j->port, -1, &j->msg);
    snprintf(j->err, sizeof j->err, "%s", mesh_errmsg());
    return NULL;
}

/* join waits for the thread at most 10 s. */
static int join(pthread_t t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    return pthread_timedjoin_np(t, NULL, &ts);
}

int main(void) {
    static const uint8_t one[] = {0x01};
    CHECK_OK(mesh_init(NULL));
    mesh_proc_t proc;
    mesh_instance_t inst;
    CHECK_OK(mesh_proc_create("unix:", "root", &proc));
    CHECK_OK(mesh_instance_create(proc, "client", &inst));

    /* A blocked receiver gets a message sent from another thread. */
    {
        recv_job j = {0};
        mesh_buf_t ref;
        CHECK_OK(mesh_port_open(inst, 0, &j.port, &ref));
        pthread_t t;
        pthread_create(&t, NULL, blocked_recv, &j);
        CHECK_OK(mesh_send(inst, ref.data, ref.len, "int", one, 1));
        EXPECT(join(t) == 0, "the receiver did not return");
        EXPECT(j.rc == MESH_OK && j.msg.payload.len == 1, "blocked receive: %s %s", mesh_status_name(j.rc), j.err);
        EXPECT(j.err[0] == 0, "error text after success: %s", j.err);
        mesh_msg_free(&j.msg);
        mesh_buf_free(&ref);
        mesh_handle_free(j.port);
    }
    /* A blocked receiver wakes with MESH_ECLOSED when the port closes. */
    {
        recv_job j = {0};
        CHECK_OK(mesh_port_open(inst, 0, &j.port, NULL));
        pthread_t t;
        pthread_create(&t, NULL, blocked_recv, &j);
        /* Closing before the receive starts and during it end the same way. */
        CHECK_OK(mesh_port_close(j.port));
        EXPECT(join(t) == 0, "the receiver did not return");
        EXPECT(j.rc == MESH_ECLOSED && j.err[0], "receive on a closed port: %s %s", mesh_status_name(j.rc), j.err);
        mesh_handle_free(j.port);
    }

    /* The poller: drain until MESH_AGAIN, wait for the fd, drain again. */
    {
        enum { NPORTS = 3, PER_PORT = 50 };
        mesh_port_t ports[NPORTS];
        mesh_buf_t refs[NPORTS];
        int fd;
        mesh_poller_t poller;
        CHECK_OK(mesh_poller_create(&fd, &poller));
        for (int i = 0; i < NPORTS; i++) {
            CHECK_OK(mesh_port_open(inst, 0, &ports[i], &refs[i]));
            CHECK_OK(mesh_poller_add(poller, ports[i], 100 + i));
        }
        CHECK_OK(mesh_poller_add(poller, inst, 999)); /* the instance's undeliverables */
        uint64_t tag;
        mesh_msg_t m;
        EXPECT_RC(MESH_AGAIN, mesh_poller_next(poller, &tag, &m)); /* arms the fd */
        struct pollfd pfd = {fd, POLLIN, 0};
        EXPECT(poll(&pfd, 1, 0) == 0, "the fd is readable with nothing to receive");
        for (int k = 0; k < PER_PORT; k++)
            for (int i = 0; i < NPORTS; i++) CHECK_OK(mesh_send(inst, refs[i].data, refs[i].len, "int", one, 1));
        int got[NPORTS] = {0}, total = 0, waits = 0;
        while (total < NPORTS * PER_PORT) {
            int32_t rc = mesh_poller_next(poller, &tag, &m);
            if (rc == MESH_AGAIN) {
                EXPECT(poll(&pfd, 1, 10000) == 1, "the fd did not become readable");
                waits++;
                continue;
            }
            CHECK_OK(rc);
            EXPECT(tag >= 100 && tag < 100 + NPORTS, "tag %llu", (unsigned long long)tag);
            if (tag >= 100 && tag < 100 + NPORTS) got[tag - 100]++;
            total++;
            mesh_msg_free(&m);
        }
        for (int i = 0; i < NPORTS; i++) EXPECT(got[i] == PER_PORT, "port %d: %d messages", i, got[i]);
        /* A closed port is reported once, with its tag, and leaves. */
        CHECK_OK(mesh_port_close(ports[1]));
        for (;;) {
            int32_t rc = mesh_poller_next(poller, &tag, &m);
            if (rc == MESH_AGAIN) {
                EXPECT(poll(&pfd, 1, 10000) == 1, "the fd did not become readable for the close");
                continue;
            }
            CHECK_OK(rc);
            EXPECT(m.kind == MESH_MSG_CLOSED && tag == 101 && m.text.len, "closed: kind %d tag %llu", m.kind,
                   (unsigned long long)tag);
            mesh_msg_free(&m);
            break;
        }
        /* Undeliverables arrive through the instance's tag. */
        CHECK_OK(mesh_send(inst, refs[1].data, refs[1].len, "int", one, 1));
        for (;;) {
            int32_t rc = mesh_poller_next(poller, &tag, &m);
            if (rc == MESH_AGAIN) {
                EXPECT(poll(&pfd, 1, 10000) == 1, "the fd did not become readable for the undeliverable");
                continue;
            }
            CHECK_OK(rc);
            EXPECT(m.kind == MESH_MSG_UNDELIVERABLE && tag == 999, "undeliverable: kind %d tag %llu", m.kind,
                   (unsigned long long)tag);
            mesh_msg_free(&m);
            break;
        }
        for (int i = 0; i < NPORTS; i++) {
            mesh_buf_free(&refs[i]);
            mesh_handle_free(ports[i]);
        }
        mesh_handle_free(poller); /* closes fd */
        EXPECT(fcntl(fd, F_GETFD) == -1, "the poller's fd is still open after mesh_handle_free");
    }

    /* mesh_shutdown ends a receive blocked without a time limit. */
    {
        recv_job j = {0};
        CHECK_OK(mesh_port_open(inst, 0, &j.port, NULL));
        pthread_t t;
        pthread_create(&t, NULL, blocked_recv, &j);
        CHECK_OK(mesh_shutdown(10000));
        EXPECT(join(t) == 0, "the receiver did not return after mesh_shutdown");
        EXPECT(j.rc == MESH_ECLOSED, "receive across mesh_shutdown: %s %s",
               mesh_status_name(j.rc), j.err);
    }
    return tu_finish("ports");
}
