// SPDX-License-Identifier: MIT
/* virtio_pci.c: the virtio 1.x PCI transport (modern only): capabilities, common config, notify, ISR, MSI-X. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "dev/pci.h"
#include "net/vhost.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"
#include "vmm/bus.h"

/* BAR0 layout (one 64-bit memory BAR). */
#define OFF_COMMON 0x0000
#define OFF_ISR 0x1000
#define OFF_DEVICE 0x2000
#define OFF_NOTIFY 0x3000
#define OFF_MSIX_TABLE 0x4000
#define OFF_MSIX_PBA 0x5000
#define BAR_SIZE 0x8000
#define COMMON_LEN 0x38
#define NOTIFY_MULT 4
#define DEVICE_MAX 0x1000

/* Capability positions in configuration space. */
#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_NOTIFY 0x60
#define CAP_ISR 0x78
#define CAP_DEVICE 0x88
#define CAP_PCICFG 0x98

/* virtio_pci_cap cfg_type (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

#define NO_VECTOR 0xffff
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 1

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl; /* the guest-visible table entry */
	int gsi;          /* -1 until first use */
	int efd;          /* irqfd */
	uint64_t routed_addr;
	uint32_t routed_data;
	bool ext;         /* efd handed out (virtio_queue_call_fd): keep the route current */
};

struct virtio_pci {
	struct virtio_dev vd;
	struct pci_device pci;
	unsigned nvec;
	struct msix_vector vec[VIRTIO_MAX_QUEUES + 1];
	uint8_t pba[8];
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint16_t queue_size[VIRTIO_MAX_QUEUES];
	uint64_t queue_desc[VIRTIO_MAX_QUEUES], queue_avail[VIRTIO_MAX_QUEUES],
		queue_used[VIRTIO_MAX_QUEUES];
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint8_t isr;
	bool intx_level;
	int kick_fd[VIRTIO_MAX_QUEUES];
	bool kick_watched[VIRTIO_MAX_QUEUES];
	int ext_kick_fd[VIRTIO_MAX_QUEUES]; /* -1, or the eventfd an in-kernel backend polls */
	uint64_t notify_ioeventfd_addr; /* 0: not registered */
};

static uint64_t offered_features(const struct virtio_dev *vd)
{
	return vd->ops->features | VIRTIO_BIT(VIRTIO_F_VERSION_1) |
	       VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
}

static uint16_t msix_control(const struct virtio_pci *vp)
{
	uint16_t c;

	memcpy(&c, &vp->pci.cfg[CAP_MSIX + 2], 2);
	return c;
}

static bool msix_enabled(const struct virtio_pci *vp)
{
	return msix_control(vp) & MSIX_CTRL_ENABLE;
}

/* --- interrupts --- */

static void intx_update(struct virtio_pci *vp)
{
	bool level = vp->isr && !msix_enabled(vp) &&
		     !(vp->pci.cfg[PCI_COMMAND + 1] & (PCI_COMMAND_INTX_DISABLE >> 8));

	if (level != vp->intx_level) {
		vp->intx_level = level;
		dev_irq_set(&vp->vd.ctx, vp->pci.intx_gsi, level);
	}
	if (level)
		vp->pci.cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		vp->pci.cfg[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
}

/* Make vector v's irqfd exist and point at its current address/data; -errno on failure. */
static int msix_route(struct virtio_pci *vp, unsigned v)
{
	struct msix_vector *m = &vp->vec[v];
	const struct dev_ctx *c = &vp->vd.ctx;
	uint64_t addr = ((uint64_t)m->addr_hi << 32) | m->addr_lo;

	if (!c->msi_route || !c->irqfd)
		return -ENODEV;
	if (m->gsi < 0) {
		int gsi = c->msi_route(c->irq_opaque, -1, addr, m->data);

		if (gsi < 0)
			return gsi;
		m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->efd < 0 || c->irqfd(c->irq_opaque, m->efd, (uint32_t)gsi, true)) {
			if (m->efd >= 0)
				close(m->efd);
			m->efd = -1;
			return -EIO;
		}
		m->gsi = gsi;
	} else if (addr != m->routed_addr || m->data != m->routed_data) {
		if (c->msi_route(c->irq_opaque, m->gsi, addr, m->data) < 0)
			return -EIO;
	}
	m->routed_addr = addr;
	m->routed_data = m->data;
	return 0;
}

static void msix_fire(struct virtio_pci *vp, unsigned v)
{
	uint64_t one = 1;

	if (msix_route(vp, v))
		return;
	if (write(vp->vec[v].efd, &one, sizeof(one)) < 0)
		return;
}

static void send_vector(struct virtio_pci *vp, uint16_t v, uint8_t isr_bit)
{
	vp->vd.stats.interrupts++;
	if (!msix_enabled(vp)) {
		vp->isr |= isr_bit;
		intx_update(vp);
		return;
	}
	if (v == NO_VECTOR || v >= vp->nvec)
		return;
	if ((msix_control(vp) & MSIX_CTRL_MASKALL) || (vp->vec[v].ctrl & MSIX_ENTRY_MASKED)) {
		vp->pba[v / 8] |= (uint8_t)(1u << (v % 8));
		return;
	}
	msix_fire(vp, v);
}

/* Deliver interrupts that were pending while masked (PCI 3.0, 6.8.2.9). */
static void msix_flush_pending(struct virtio_pci *vp)
{
	unsigned v;

	if (!msix_enabled(vp) || (msix_control(vp) & MSIX_CTRL_MASKALL))
		return;
	for (v = 0; v < vp->nvec; v++) {
		if ((vp->pba[v / 8] & (1u << (v % 8))) && !(vp->vec[v].ctrl & MSIX_ENTRY_MASKED)) {
			vp->pba[v / 8] &= (uint8_t)~(1u << (v % 8));
			msix_fire(vp, v);
		}
	}
}

void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pci *vp = vd->transport;

	if (q >= vd->ops->nqueues || !virtq_need_interrupt(&vd->vq[q]))
		return;
	send_vector(vp, vp->queue_vector[q], 1);
}

void virtio_config_interrupt(struct virtio_dev *vd)
{
	struct virtio_pci *vp = vd->transport;

	vd->config_generation++;
	if (vd->status & VIRTIO_STATUS_DRIVER_OK)
		send_vector(vp, vp->config_vector, 2);
}

void virtio_needs_reset(struct virtio_dev *vd, const char *why)
{
	if (ratelimit_ok(&vd->err_rl))
		log_warn("%s: %s; device needs reset", vd->ops->name, why);
	vd->stats.errors++;
	if (vd->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* Stop processing until the driver resets the device (2.1.2). */
	for (unsigned i = 0; i < vd->ops->nqueues; i++)
		vd->vq[i].ready = false;
	virtio_config_interrupt(vd);
}

/* --- reset and queue setup --- */

static void vp_reset(struct virtio_pci *vp)
{
	struct virtio_dev *vd = &vp->vd;
	unsigned i;

	if (vd->ops->reset)
		vd->ops->reset(vd->priv, vd);
	vd->status = 0;
	vd->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_sel = 0;
	vp->config_vector = NO_VECTOR;
	for (i = 0; i < vd->ops->nqueues; i++) {
		virtq_reset(&vd->vq[i]);
		vp->queue_vector[i] = NO_VECTOR;
		vp->queue_size[i] = vd->ops->queue_size;
		vp->queue_desc[i] = vp->queue_avail[i] = vp->queue_used[i] = 0;
	}
	vp->isr = 0;
	intx_update(vp);
}

static void vp_queue_enable(struct virtio_pci *vp, unsigned q)
{
	struct virtio_dev *vd = &vp->vd;

	if (virtq_setup(&vd->vq[q], vd->ctx.gm, vp->queue_size[q], vp->queue_desc[q],
			vp->queue_avail[q], vp->queue_used[q],
			virtio_has_feature(vd, VIRTIO_F_EVENT_IDX),
			virtio_has_feature(vd, VIRTIO_F_INDIRECT_DESC)))
		virtio_needs_reset(vd, "queue enabled with rings outside guest RAM or misaligned");
}

static void vp_set_status(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_dev *vd = &vp->vd;
	uint8_t old = vd->status;

	if (v == 0) {
		vp_reset(vp);
		return;
	}
	/*
	 * Only a reset clears bits (2.1.2): a driver that drops FEATURES_OK or
	 * DRIVER_OK must not rewrite features under running queues or activate twice.
	 */
	v |= old;
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t f = vd->driver_features;

		/* Accept only a subset of what we offer, and only modern drivers (3.1.1). */
		if ((f & ~offered_features(vd)) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	/* Unaccepted features never reach activate (3.1.1: DRIVER_OK follows FEATURES_OK). */
	if (!(v & VIRTIO_STATUS_FEATURES_OK))
		v &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	vd->status = v;
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    vd->ops->activate)
		vd->ops->activate(vd->priv, vd);
}

/* --- BAR0 regions --- */

static uint64_t get_le(const uint8_t *d, uint32_t len)
{
	uint64_t v = 0;

	memcpy(&v, d, len);
	return v;
}

static void common_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_dev *vd = &vp->vd;
	unsigned q = vp->queue_sel;
	bool qok = q < vd->ops->nqueues;
	uint64_t v = 0;

	switch (off) {
	case 0x00: v = vp->dfselect; break;
	case 0x04:
		v = vp->dfselect < 2 ? (uint32_t)(offered_features(vd) >> (32 * vp->dfselect)) : 0;
		break;
	case 0x08: v = vp->gfselect; break;
	case 0x0c:
		v = vp->gfselect < 2 ? (uint32_t)(vd->driver_features >> (32 * vp->gfselect)) : 0;
		break;
	case 0x10: v = vp->config_vector; break;
	case 0x12: v = vd->ops->nqueues; break;
	case 0x14: v = vd->status; break;
	case 0x15: v = vd->config_generation; break;
	case 0x16: v = vp->queue_sel; break;
	case 0x18: v = qok ? vp->queue_size[q] : 0; break;
	case 0x1a: v = qok ? vp->queue_vector[q] : NO_VECTOR; break;
	case 0x1c: v = qok ? vd->vq[q].ready : 0; break;
	case 0x1e: v = qok ? q : 0; break;
	case 0x20: v = qok ? vp->queue_desc[q] : 0; break;
	case 0x24: v = qok ? vp->queue_desc[q] >> 32 : 0; break;
	case 0x28: v = qok ? vp->queue_avail[q] : 0; break;
	case 0x2c: v = qok ? vp->queue_avail[q] >> 32 : 0; break;
	case 0x30: v = qok ? vp->queue_used[q] : 0; break;
	case 0x34: v = qok ? vp->queue_used[q] >> 32 : 0; break;
	default: break;
	}
	memcpy(data, &v, len);
}

static void set_half(uint64_t *reg, uint32_t off, uint64_t v, uint32_t len)
{
	if (len == 8) {
		*reg = v;
	} else if (off & 4) {
		*reg = (*reg & 0xffffffffULL) | (v << 32);
	} else {
		*reg = (*reg & ~0xffffffffULL) | (uint32_t)v;
	}
}

static void common_write(struct virtio_pci *vp, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_dev *vd = &vp->vd;
	uint64_t v = get_le(data, len);
	unsigned q = vp->queue_sel;
	bool qok = q < vd->ops->nqueues;
	/* Queue registers may change only while the queue is disabled (4.1.4.3.2). */
	bool qwritable = qok && !vd->vq[q].ready && !(vd->status & VIRTIO_STATUS_DRIVER_OK);

	switch (off) {
	case 0x00: vp->dfselect = (uint32_t)v; break;
	case 0x08: vp->gfselect = (uint32_t)v; break;
	case 0x0c:
		if (vp->gfselect < 2 && !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
			uint64_t mask = 0xffffffffULL << (32 * vp->gfselect);

			vd->driver_features = (vd->driver_features & ~mask) |
					      (((uint64_t)(uint32_t)v) << (32 * vp->gfselect));
		}
		break;
	case 0x10: vp->config_vector = (uint16_t)(v < vp->nvec ? v : NO_VECTOR); break;
	case 0x14: vp_set_status(vp, (uint8_t)v); break;
	case 0x16: vp->queue_sel = (uint16_t)v; break;
	case 0x18:
		/* A power of two no larger than what we offer; otherwise keep the old size. */
		if (qwritable && v && v <= vd->ops->queue_size && !(v & (v - 1)))
			vp->queue_size[q] = (uint16_t)v;
		break;
	case 0x1a:
		if (qok)
			vp->queue_vector[q] = (uint16_t)(v < vp->nvec ? v : NO_VECTOR);
		break;
	case 0x1c:
		/* A device that needs a reset stays stopped until it gets one (2.1.2). */
		if (qok && v == 1 && !vd->vq[q].ready && !(vd->status & VIRTIO_STATUS_NEEDS_RESET))
			vp_queue_enable(vp, q);
		break;
	case 0x20: case 0x24:
		if (qwritable)
			set_half(&vp->queue_desc[q], off, v, len);
		break;
	case 0x28: case 0x2c:
		if (qwritable)
			set_half(&vp->queue_avail[q], off, v, len);
		break;
	case 0x30: case 0x34:
		if (qwritable)
			set_half(&vp->queue_used[q], off, v, len);
		break;
	default: break; /* read-only or reserved */
	}
}

static void kick(struct virtio_pci *vp, unsigned q)
{
	uint64_t one = 1;

	if (q >= vp->vd.ops->nqueues)
		return;
	if (vp->ext_kick_fd[q] >= 0) {
		if (write(vp->ext_kick_fd[q], &one, sizeof(one)) < 0)
			return;
		return;
	}
	if (vp->kick_watched[q]) {
		if (write(vp->kick_fd[q], &one, sizeof(one)) < 0)
			return;
		return;
	}
	/* No event loop (device tests): handle on this thread. */
	vp->vd.stats.kicks++;
	if (vp->vd.vq[q].ready && vp->vd.ops->queue_notify)
		vp->vd.ops->queue_notify(vp->vd.priv, &vp->vd, q);
}

bool virtio_queue_requeue(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pci *vp = vd->transport;
	uint64_t one = 1;

	if (q >= vd->ops->nqueues || !vp->kick_watched[q])
		return false;
	return write(vp->kick_fd[q], &one, sizeof(one)) == (ssize_t)sizeof(one);
}

static void msix_table_rw(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
			  bool wr)
{
	unsigned v = off / 16, f = (off % 16) / 4;
	uint32_t *reg;

	if (v >= vp->nvec || len != 4 || (off & 3)) {
		if (!wr)
			memset(data, 0xff, len);
		return;
	}
	reg = f == 0 ? &vp->vec[v].addr_lo : f == 1 ? &vp->vec[v].addr_hi :
	      f == 2 ? &vp->vec[v].data : &vp->vec[v].ctrl;
	if (!wr) {
		memcpy(data, reg, 4);
		return;
	}
	memcpy(reg, data, 4);
	if (f == 3) {
		vp->vec[v].ctrl &= MSIX_ENTRY_MASKED;
		msix_flush_pending(vp);
	}
	/* A backend writes this irqfd without us: follow the guest's new address/data now. */
	if (vp->vec[v].ext && vp->vec[v].gsi >= 0 && !(vp->vec[v].ctrl & MSIX_ENTRY_MASKED))
		msix_route(vp, v);
}

static void bar_access(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len, bool wr)
{
	struct virtio_dev *vd = &vp->vd;

	if (off < OFF_COMMON + COMMON_LEN) {
		/* Naturally aligned 1/2/4-byte accesses, 8 allowed for the 64-bit fields. */
		if ((off & (len - 1)) || len == 8 || len == 3) {
			if (!wr)
				memset(data, 0xff, len);
			return;
		}
		if (wr)
			common_write(vp, (uint32_t)off, data, len);
		else
			common_read(vp, (uint32_t)off, data, len);
	} else if (off >= OFF_ISR && off < OFF_ISR + 4) {
		if (!wr) {
			memset(data, 0, len);
			/*
			 * Reading ISR acknowledges and deasserts INTx (4.1.4.5). The status is
			 * the byte at offset 0: a read of bytes 1-3 alone sees 0 and must not
			 * swallow an interrupt the driver has not seen.
			 */
			if (off == OFF_ISR) {
				data[0] = vp->isr;
				vp->isr = 0;
				intx_update(vp);
			}
		}
	} else if (off >= OFF_DEVICE && off < OFF_DEVICE + DEVICE_MAX) {
		uint32_t o = (uint32_t)(off - OFF_DEVICE);

		if (!range_ok(o, len, vd->ops->config_size)) {
			if (!wr)
				memset(data, 0xff, len);
		} else if (wr) {
			if (vd->ops->config_write)
				vd->ops->config_write(vd->priv, o, data, len);
		} else if (vd->ops->config_read) {
			vd->ops->config_read(vd->priv, o, data, len);
		} else {
			memset(data, 0, len);
		}
	} else if (off >= OFF_NOTIFY && off < OFF_NOTIFY + NOTIFY_MULT * VIRTIO_MAX_QUEUES) {
		if (wr)
			kick(vp, (unsigned)(off - OFF_NOTIFY) / NOTIFY_MULT);
		else
			memset(data, 0, len);
	} else if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_TABLE + 16ULL * vp->nvec) {
		msix_table_rw(vp, (uint32_t)(off - OFF_MSIX_TABLE), data, len, wr);
	} else if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + sizeof(vp->pba)) {
		if (!wr) {
			uint64_t o = off - OFF_MSIX_PBA;

			memset(data, 0, len);
			memcpy(data, vp->pba + o, MIN(len, sizeof(vp->pba) - o));
		}
	} else if (!wr) {
		memset(data, 0xff, len);
	}
}

static void bar_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;

	pthread_mutex_lock(&vp->vd.lock);
	bar_access(vp, off, data, len, false);
	pthread_mutex_unlock(&vp->vd.lock);
}

static void bar_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint8_t buf[8];

	memcpy(buf, data, len);
	pthread_mutex_lock(&vp->vd.lock);
	bar_access(vp, off, buf, len, true);
	pthread_mutex_unlock(&vp->vd.lock);
}

static const struct bus_ops bar_ops = { .read = bar_read, .write = bar_write };

/* --- PCI configuration space --- */

static void put_cap(uint8_t *cfg, unsigned at, unsigned next, uint8_t type, uint32_t off,
		    uint32_t len, uint8_t cap_len)
{
	cfg[at] = PCI_CAP_ID_VNDR;
	cfg[at + 1] = (uint8_t)next;
	cfg[at + 2] = cap_len;
	cfg[at + 3] = type;
	cfg[at + 4] = 0; /* BAR 0 */
	memcpy(&cfg[at + 8], &off, 4);
	memcpy(&cfg[at + 12], &len, 4);
}

/* The PCI_CFG capability window (4.1.4.9): bar/offset/length select, data accesses BAR0. */
static bool pcicfg_target(struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	uint8_t *c = &vp->pci.cfg[CAP_PCICFG];

	memcpy(off, c + 8, 4);
	memcpy(len, c + 12, 4);
	return c[4] == 0 && (*len == 1 || *len == 2 || *len == 4) && *off < BAR_SIZE &&
	       !(*off & (*len - 1));
}

static void vp_cfg_reading(void *opaque, unsigned off, unsigned len)
{
	struct virtio_pci *vp = opaque;
	uint32_t o, l;

	if (off + len <= CAP_PCICFG + 16 || off >= CAP_PCICFG + 20)
		return;
	pthread_mutex_lock(&vp->vd.lock);
	memset(&vp->pci.cfg[CAP_PCICFG + 16], 0, 4);
	if (pcicfg_target(vp, &o, &l))
		bar_access(vp, o, &vp->pci.cfg[CAP_PCICFG + 16], l, false);
	pthread_mutex_unlock(&vp->vd.lock);
}

static void vp_cfg_written(void *opaque, unsigned off, unsigned len)
{
	struct virtio_pci *vp = opaque;
	uint32_t o, l;

	pthread_mutex_lock(&vp->vd.lock);
	if (off < CAP_MSIX + 4 && off + len > CAP_MSIX + 2) {
		/* MSI-X enable or function mask changed. */
		intx_update(vp);
		msix_flush_pending(vp);
	}
	if (off <= PCI_COMMAND + 1 && off + len > PCI_COMMAND + 1)
		intx_update(vp); /* INTx disable toggled */
	if (off < CAP_PCICFG + 20 && off + len > CAP_PCICFG + 16 && pcicfg_target(vp, &o, &l))
		bar_access(vp, o, &vp->pci.cfg[CAP_PCICFG + 16], l, true);
	pthread_mutex_unlock(&vp->vd.lock);
}

static void vp_kick_cb(void *arg);

/*
 * Follow BAR moves with the notify ioeventfds.
 *
 * Runs on a vCPU thread under the PCI host bridge's lock (a guest config write),
 * while the event loop may hand a queue to or back from vhost under vd->lock
 * (virtio_queue_kick_fd/_release change ext_kick_fd and use
 * notify_ioeventfd_addr): take vd->lock so both see one consistent
 * registration. Lock order: the host bridge's lock, then vd->lock, as in
 * vp_cfg_reading/vp_cfg_written; nothing holding vd->lock may enter the host
 * bridge (virtio_pci_destroy removes the function without vd->lock).
 */
static void vp_bar_mapped(void *opaque, int bar, uint64_t addr)
{
	struct virtio_pci *vp = opaque;
	const struct dev_ctx *c = &vp->vd.ctx;
	unsigned q;

	if (bar != 0 || !c->ioeventfd)
		return;
	pthread_mutex_lock(&vp->vd.lock);
	for (q = 0; q < vp->vd.ops->nqueues; q++) {
		int fd = vp->ext_kick_fd[q] >= 0 ? vp->ext_kick_fd[q] :
			 vp->kick_watched[q]	   ? vp->kick_fd[q] :
						     -1;

		if (fd < 0)
			continue;
		if (vp->notify_ioeventfd_addr)
			c->ioeventfd(c->irq_opaque, fd, vp->notify_ioeventfd_addr + NOTIFY_MULT * q, 2,
				     false);
		if (addr)
			c->ioeventfd(c->irq_opaque, fd, addr + OFF_NOTIFY + NOTIFY_MULT * q, 2, true);
	}
	vp->notify_ioeventfd_addr = addr ? addr + OFF_NOTIFY : 0;
	pthread_mutex_unlock(&vp->vd.lock);
}

struct kick_arg {
	struct virtio_pci *vp;
	unsigned q;
};

static void vp_kick_cb(void *arg)
{
	struct kick_arg *ka = arg;
	struct virtio_pci *vp = ka->vp;
	uint64_t n;

	if (read(vp->kick_fd[ka->q], &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&vp->vd.lock);
	vp->vd.stats.kicks++;
	if (vp->vd.vq[ka->q].ready && vp->vd.ops->queue_notify)
		vp->vd.ops->queue_notify(vp->vd.priv, &vp->vd, ka->q);
	pthread_mutex_unlock(&vp->vd.lock);
}

/* Per-queue callback arguments live right after the transport in one allocation. */
struct virtio_pci_alloc {
	struct virtio_pci vp;
	struct kick_arg ka[VIRTIO_MAX_QUEUES];
};

int virtio_pci_create(const struct dev_ctx *ctx, const struct virtio_dev_ops *ops, void *priv,
		      struct virtio_dev **out, struct err *e)
{
	struct virtio_pci_alloc *a;
	struct virtio_pci *vp;
	uint8_t *cfg;
	uint16_t w;
	uint32_t tbl, pba, mult = NOTIFY_MULT;
	unsigned q;
	int r;

	if (!ctx->pci)
		return err_set(e, EINVAL, "%s: no PCI bus", ops->name);
	if (ops->nqueues == 0 || ops->nqueues > VIRTIO_MAX_QUEUES || ops->config_size > DEVICE_MAX)
		return err_set(e, EINVAL, "%s: bad device description", ops->name);
	a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(e, ENOMEM, "out of memory");
	vp = &a->vp;
	vp->vd.ops = ops;
	vp->vd.priv = priv;
	vp->vd.ctx = *ctx;
	vp->vd.transport = vp;
	vp->vd.err_rl = (struct ratelimit)RATELIMIT_INIT(5000, 5);
	pthread_mutex_init(&vp->vd.lock, NULL);
	vp->nvec = ops->nqueues + 1;
	for (q = 0; q < vp->nvec; q++) {
		vp->vec[q].gsi = -1;
		vp->vec[q].efd = -1;
		vp->vec[q].ctrl = MSIX_ENTRY_MASKED;
	}
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->kick_fd[q] = vp->ext_kick_fd[q] = -1;

	cfg = vp->pci.cfg;
	w = 0x1af4;
	memcpy(&cfg[PCI_VENDOR_ID], &w, 2);
	w = (uint16_t)(0x1040 + ops->device_id); /* modern device IDs (4.1.2.1) */
	memcpy(&cfg[PCI_DEVICE_ID], &w, 2);
	cfg[PCI_REVISION_ID] = 1;
	cfg[PCI_CLASS_PROG] = (uint8_t)ops->pci_class;
	cfg[PCI_CLASS_DEVICE] = (uint8_t)(ops->pci_class >> 8);
	cfg[PCI_CLASS_DEVICE + 1] = (uint8_t)(ops->pci_class >> 16);
	w = 0x1af4;
	memcpy(&cfg[PCI_SUBSYSTEM_VENDOR_ID], &w, 2);
	w = (uint16_t)(0x40 + ops->device_id);
	memcpy(&cfg[PCI_SUBSYSTEM_ID], &w, 2);
	cfg[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	cfg[PCI_CAPABILITY_LIST] = CAP_MSIX;

	/* MSI-X: table and PBA in BAR 0 (PCI 3.0, 6.8.2). */
	cfg[CAP_MSIX] = PCI_CAP_ID_MSIX;
	cfg[CAP_MSIX + 1] = CAP_COMMON;
	w = (uint16_t)(vp->nvec - 1);
	memcpy(&cfg[CAP_MSIX + 2], &w, 2);
	tbl = OFF_MSIX_TABLE;
	pba = OFF_MSIX_PBA;
	memcpy(&cfg[CAP_MSIX + 4], &tbl, 4);
	memcpy(&cfg[CAP_MSIX + 8], &pba, 4);
	vp->pci.wmask[CAP_MSIX + 3] = 0xc0;

	put_cap(cfg, CAP_COMMON, CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, OFF_COMMON, COMMON_LEN, 16);
	put_cap(cfg, CAP_NOTIFY, CAP_ISR, VIRTIO_PCI_CAP_NOTIFY_CFG, OFF_NOTIFY,
		NOTIFY_MULT * ops->nqueues, 20);
	memcpy(&cfg[CAP_NOTIFY + 16], &mult, 4);
	put_cap(cfg, CAP_ISR, CAP_DEVICE, VIRTIO_PCI_CAP_ISR_CFG, OFF_ISR, 4, 16);
	put_cap(cfg, CAP_DEVICE, CAP_PCICFG, VIRTIO_PCI_CAP_DEVICE_CFG, OFF_DEVICE,
		ops->config_size ? ops->config_size : 4, 16);
	put_cap(cfg, CAP_PCICFG, 0, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
	memset(&vp->pci.wmask[CAP_PCICFG + 4], 0xff, 1);
	memset(&vp->pci.wmask[CAP_PCICFG + 8], 0xff, 12);

	vp->pci.name = ops->name;
	vp->pci.bars[0] = (struct pci_bar_desc){ .size = BAR_SIZE, .is64 = true, .ops = &bar_ops,
						 .opaque = vp };
	vp->pci.cfg_reading = vp_cfg_reading;
	vp->pci.cfg_written = vp_cfg_written;
	vp->pci.bar_mapped = vp_bar_mapped;
	vp->pci.opaque = vp;
	vp_reset(vp);

	/* One eventfd per queue, kicked by ioeventfd (or the MMIO fallback), served by the loop. */
	if (ctx->watch_fd) {
		for (q = 0; q < ops->nqueues; q++) {
			vp->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			a->ka[q] = (struct kick_arg){ vp, q };
			if (vp->kick_fd[q] < 0 ||
			    ctx->watch_fd(ctx->irq_opaque, vp->kick_fd[q], vp_kick_cb, &a->ka[q])) {
				r = err_set(e, errno ? errno : EIO, "%s: cannot set up queue %u kicks",
					    ops->name, q);
				goto fail;
			}
			vp->kick_watched[q] = true;
		}
	}
	r = pci_add_device(ctx->pci, &vp->pci, e);
	if (r)
		goto fail;
	*out = &vp->vd;
	return 0;
fail:
	for (q = 0; q < ops->nqueues; q++) {
		if (vp->kick_watched[q] && ctx->unwatch_fd)
			ctx->unwatch_fd(ctx->irq_opaque, vp->kick_fd[q]);
		if (vp->kick_fd[q] >= 0)
			close(vp->kick_fd[q]);
	}
	pthread_mutex_destroy(&vp->vd.lock);
	free(a);
	return r;
}

void virtio_pci_destroy(struct virtio_dev *vd)
{
	struct virtio_pci *vp = vd->transport;
	const struct dev_ctx *c = &vd->ctx;
	unsigned q;

	unsigned nq = vd->ops->nqueues; /* ops may live in priv, freed by destroy */

	pci_remove_device(c->pci, &vp->pci);
	/* The device first: it may hand queues back from a backend through the transport. */
	if (vd->ops->destroy)
		vd->ops->destroy(vd->priv);
	for (q = 0; q < nq; q++) {
		if (vp->ext_kick_fd[q] >= 0)
			close(vp->ext_kick_fd[q]);
		vp->ext_kick_fd[q] = -1;
		if (vp->kick_watched[q] && c->unwatch_fd)
			c->unwatch_fd(c->irq_opaque, vp->kick_fd[q]);
		if (vp->kick_fd[q] >= 0)
			close(vp->kick_fd[q]);
	}
	for (q = 0; q < vp->nvec; q++) {
		if (vp->vec[q].efd >= 0) {
			if (c->irqfd)
				c->irqfd(c->irq_opaque, vp->vec[q].efd, (uint32_t)vp->vec[q].gsi, false);
			close(vp->vec[q].efd);
		}
	}
	pthread_mutex_destroy(&vd->lock);
	/* vp is the first member of its struct virtio_pci_alloc. */
	free(vp);
}

/* --- hand-off of queues to an in-kernel backend (vhost) --- */

/* Move queue q's notify ioeventfd from one eventfd to another (either may be -1). */
static void kick_move(struct virtio_pci *vp, unsigned q, int from, int to)
{
	const struct dev_ctx *c = &vp->vd.ctx;
	uint64_t addr = vp->notify_ioeventfd_addr + NOTIFY_MULT * q;

	if (!vp->notify_ioeventfd_addr || !c->ioeventfd)
		return;
	if (from >= 0)
		c->ioeventfd(c->irq_opaque, from, addr, 2, false);
	if (to >= 0)
		c->ioeventfd(c->irq_opaque, to, addr, 2, true);
}

int virtio_queue_kick_fd(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pci *vp = vd->transport;
	int fd;

	if (q >= vd->ops->nqueues)
		return -EINVAL;
	if (vp->ext_kick_fd[q] >= 0)
		return vp->ext_kick_fd[q];
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	kick_move(vp, q, vp->kick_watched[q] ? vp->kick_fd[q] : -1, fd);
	vp->ext_kick_fd[q] = fd;
	return fd;
}

void virtio_queue_kick_release(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pci *vp = vd->transport;

	if (q >= vd->ops->nqueues || vp->ext_kick_fd[q] < 0)
		return;
	kick_move(vp, q, vp->ext_kick_fd[q], vp->kick_watched[q] ? vp->kick_fd[q] : -1);
	close(vp->ext_kick_fd[q]);
	vp->ext_kick_fd[q] = -1;
}

int virtio_queue_call_fd(struct virtio_dev *vd, unsigned q)
{
	struct virtio_pci *vp = vd->transport;
	uint16_t v;
	int r;

	if (q >= vd->ops->nqueues)
		return -EINVAL;
	v = vp->queue_vector[q];
	if (!msix_enabled(vp) || v == NO_VECTOR || v >= vp->nvec)
		return -ENODEV;
	r = msix_route(vp, v);
	if (r)
		return r;
	vp->vec[v].ext = true;
	return vp->vec[v].efd;
}

/* --- state --- */

#define VIRTIO_STATE_V1 1

struct virtio_state_v1 {
	uint8_t status, config_generation, isr, pad;
	uint64_t driver_features;
	uint16_t config_vector, queue_sel;
	uint32_t dfselect, gfselect;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES], queue_size[VIRTIO_MAX_QUEUES];
	uint64_t queue_desc[VIRTIO_MAX_QUEUES], queue_avail[VIRTIO_MAX_QUEUES],
		queue_used[VIRTIO_MAX_QUEUES];
	uint8_t queue_ready[VIRTIO_MAX_QUEUES];
	uint16_t last_avail[VIRTIO_MAX_QUEUES], used_idx[VIRTIO_MAX_QUEUES];
	uint32_t msix[VIRTIO_MAX_QUEUES + 1][4];
	uint8_t pba[8];
	uint8_t pci_cfg[PCI_CFG_SIZE];
};

int virtio_save(struct virtio_dev *vd, struct sbuf *out)
{
	struct virtio_pci *vp = vd->transport;
	struct virtio_state_v1 st;
	struct sbuf dev = { 0 };
	uint8_t ver = VIRTIO_STATE_V1;
	uint32_t devlen;
	unsigned q;
	int r;

	memset(&st, 0, sizeof(st));
	pthread_mutex_lock(&vd->lock);
	/* The device first: one served elsewhere (vhost) brings the ring positions home. */
	r = vd->ops->save ? vd->ops->save(vd->priv, &dev) : 0;
	st.status = vd->status;
	st.config_generation = vd->config_generation;
	st.isr = vp->isr;
	st.driver_features = vd->driver_features;
	st.config_vector = vp->config_vector;
	st.queue_sel = vp->queue_sel;
	st.dfselect = vp->dfselect;
	st.gfselect = vp->gfselect;
	for (q = 0; q < vd->ops->nqueues; q++) {
		st.queue_vector[q] = vp->queue_vector[q];
		st.queue_size[q] = vp->queue_size[q];
		st.queue_desc[q] = vp->queue_desc[q];
		st.queue_avail[q] = vp->queue_avail[q];
		st.queue_used[q] = vp->queue_used[q];
		st.queue_ready[q] = vd->vq[q].ready;
		st.last_avail[q] = vd->vq[q].last_avail;
		st.used_idx[q] = vd->vq[q].used_idx;
	}
	for (q = 0; q < vp->nvec; q++) {
		st.msix[q][0] = vp->vec[q].addr_lo;
		st.msix[q][1] = vp->vec[q].addr_hi;
		st.msix[q][2] = vp->vec[q].data;
		st.msix[q][3] = vp->vec[q].ctrl;
	}
	memcpy(st.pba, vp->pba, sizeof(st.pba));
	memcpy(st.pci_cfg, vp->pci.cfg, PCI_CFG_SIZE);
	pthread_mutex_unlock(&vd->lock);
	devlen = (uint32_t)dev.len;
	if (!r)
		r = sbuf_put(out, &ver, 1);
	if (!r)
		r = sbuf_put(out, &st, sizeof(st));
	if (!r)
		r = sbuf_put(out, &devlen, sizeof(devlen));
	if (!r && dev.len)
		r = sbuf_put(out, dev.data, dev.len);
	sbuf_free(&dev);
	return r;
}

int virtio_load(struct virtio_dev *vd, const uint8_t *buf, size_t len)
{
	struct virtio_pci *vp = vd->transport;
	struct virtio_state_v1 st;
	uint32_t devlen;
	unsigned q;
	int r = 0;

	if (len < 1 + sizeof(st) + 4 || buf[0] != VIRTIO_STATE_V1)
		return -EINVAL;
	memcpy(&st, buf + 1, sizeof(st));
	memcpy(&devlen, buf + 1 + sizeof(st), 4);
	if (devlen != len - 1 - sizeof(st) - 4)
		return -EINVAL;
	pthread_mutex_lock(&vd->lock);
	vd->status = st.status;
	vd->config_generation = st.config_generation;
	vp->isr = st.isr;
	vd->driver_features = st.driver_features & offered_features(vd);
	vp->config_vector = st.config_vector;
	vp->queue_sel = st.queue_sel;
	vp->dfselect = st.dfselect;
	vp->gfselect = st.gfselect;
	for (q = 0; q < vd->ops->nqueues; q++) {
		vp->queue_vector[q] = st.queue_vector[q];
		vp->queue_size[q] = st.queue_size[q];
		vp->queue_desc[q] = st.queue_desc[q];
		vp->queue_avail[q] = st.queue_avail[q];
		vp->queue_used[q] = st.queue_used[q];
		virtq_reset(&vd->vq[q]);
		if (st.queue_ready[q]) {
			vp_queue_enable(vp, q);
			vd->vq[q].last_avail = st.last_avail[q];
			vd->vq[q].used_idx = st.used_idx[q];
		}
	}
	for (q = 0; q < vp->nvec; q++) {
		vp->vec[q].addr_lo = st.msix[q][0];
		vp->vec[q].addr_hi = st.msix[q][1];
		vp->vec[q].data = st.msix[q][2];
		vp->vec[q].ctrl = st.msix[q][3] & MSIX_ENTRY_MASKED;
	}
	memcpy(vp->pba, st.pba, sizeof(vp->pba));
	/* Only the guest-writable parts of config space come from the record. */
	for (q = 0; q < PCI_CFG_SIZE; q++)
		vp->pci.cfg[q] = (uint8_t)((vp->pci.cfg[q] & ~vp->pci.wmask[q]) |
					   (st.pci_cfg[q] & vp->pci.wmask[q]));
	if (vd->ops->load)
		r = vd->ops->load(vd->priv, buf + 1 + sizeof(st) + 4, devlen);
	intx_update(vp);
	pthread_mutex_unlock(&vd->lock);
	return r;
}

int virtio_queue_vhost_vring(struct virtio_dev *vd, unsigned q, struct vhost_vring *vr)
{
	const struct virtq *vq = &vd->vq[q];

	*vr = (struct vhost_vring){
		.index = q,
		.num = vq->size,
		.base = vq->last_avail,
		/* Checked when the queue was enabled (virtq_setup). */
		.desc = gm_ptr(vd->ctx.gm, vq->desc_gpa, 16ULL * vq->size),
		.avail = gm_ptr(vd->ctx.gm, vq->avail_gpa, 6 + 2ULL * vq->size),
		.used = gm_ptr(vd->ctx.gm, vq->used_gpa, 6 + 8ULL * vq->size),
	};
	/* The interrupt first: hand the kicks off only when the backend can signal back. */
	vr->call_fd = virtio_queue_call_fd(vd, q);
	if (vr->call_fd < 0)
		return vr->call_fd;
	vr->kick_fd = virtio_queue_kick_fd(vd, q);
	return vr->kick_fd < 0 ? vr->kick_fd : 0;
}
