/*
 * mc_abi.c - the descriptor, capability and symbol checks of payd-modcheck.
 *
 * The loader (server/modules.c) is the authority: it refuses a module whose
 * ABI major differs, whose descriptor is smaller than v1.0, whose kind does
 * not match its section, or which advertises a capability without the
 * function behind it, and modcheck reports those refusals with the
 * loader's own words (mc_abi_loader_errors). This file opens the module a
 * second time, the same way (dlopen RTLD_NOW|RTLD_LOCAL), to judge each
 * rule separately, so one run reports every problem, not only the first
 * the loader stopped at. It reads no descriptor field that lies beyond the
 * struct_size the module declared.
 *
 * Exported symbols are read from the file's dynamic symbol table (.dynsym,
 * through <elf.h>): a module built with -fvisibility=hidden exports only
 * payd_module_v1. Anything else is a warning: it still loads (payd looks up
 * only the entry symbol), but RTLD_LOCAL or not, exported names are where
 * two modules' private helpers start to collide.
 */
#include "modcheck.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Size of the v1.0 module descriptor, as modules.c defines it. */
#define MC_MODULE_V1_0_SIZE (offsetof(payd_module, notifier) + sizeof(void *))

static void *mc_handle;

/* Linker-made names that are not the module author's doing. */
static int symbol_is_linker_noise(const char *name)
{
    static const char *const noise[] = {"_init", "_fini", "_edata", "_end", "__bss_start",
                                        "_DYNAMIC", "_GLOBAL_OFFSET_TABLE_", NULL};
    for (int i = 0; noise[i]; i++)
        if (strcmp(name, noise[i]) == 0) return 1;
    return 0;
}

/*
 * Lists the defined, visible symbols of the ELF file at `path` into
 * `extra` (comma separated, truncated), not counting the entry symbol.
 * Sets *has_entry. Returns the number of extra symbols, or -1 when the file
 * cannot be read as ELF (with a reason in `extra`).
 */
static int elf_exports(const char *path, int *has_entry, char *extra, size_t extra_len)
{
    *has_entry = 0;
    extra[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(extra, extra_len, "cannot open %.300s", path);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(ElfW(Ehdr))) {
        close(fd);
        snprintf(extra, extra_len, "%.300s is too small to be an ELF file", path);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(extra, extra_len, "cannot map %.300s", path);
        return -1;
    }
    int count = -1;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    size_t used = 0;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff == 0 || eh->e_shoff > size ||
        (size - eh->e_shoff) / sizeof(ElfW(Shdr)) < eh->e_shnum) {
        snprintf(extra, extra_len, "%.300s has no readable ELF section table", path);
        goto done;
    }
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum) continue;
        const ElfW(Shdr) *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
            strs->sh_offset > size || strs->sh_size > size - strs->sh_offset ||
            sh[i].sh_entsize != sizeof(ElfW(Sym)))
            break;
        const ElfW(Sym) *syms = (const ElfW(Sym) *)(base + sh[i].sh_offset);
        const char *names = (const char *)(base + strs->sh_offset);
        size_t n = sh[i].sh_size / sizeof(ElfW(Sym));
        count = 0;
        for (size_t k = 1; k < n; k++) {
            const ElfW(Sym) *s = &syms[k];
            int bind = ELF64_ST_BIND(s->st_info);
            int vis = ELF64_ST_VISIBILITY(s->st_other);
            if (s->st_shndx == SHN_UNDEF || s->st_name >= strs->sh_size) continue;
            if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) continue;
            if (vis != STV_DEFAULT && vis != STV_PROTECTED) continue;
            const char *name = names + s->st_name;
            if (!memchr(name, '\0', strs->sh_size - s->st_name)) continue;
            if (strcmp(name, PAYD_ENTRY_SYMBOL) == 0) {
                *has_entry = 1;
                continue;
            }
            if (symbol_is_linker_noise(name)) continue;
            count++;
            if (used < extra_len) {
                int w = snprintf(extra + used, extra_len - used, "%s%s", used ? ", " : "", name);
                if (w > 0) used += (size_t)w;
            }
        }
        break;
    }
    if (count < 0 && !extra[0]) snprintf(extra, extra_len, "%.300s has no dynamic symbol table", path);
done:
    munmap((void *)base, size);
    return count;
}

static void check_symbols(const mc_ctx *c)
{
    int has_entry = 0;
    char extra[400];
    int n = elf_exports(c->module_path, &has_entry, extra, sizeof extra);
    if (n < 0) {
        mc_check_set(MC_SYMBOLS, MC_FAIL, "%s", extra);
    } else if (!has_entry) {
        mc_check_set(MC_SYMBOLS, MC_FAIL,
                     "%s is not exported: declare the module with PAYD_DECLARE_MODULE()",
                     PAYD_ENTRY_SYMBOL);
    } else if (n > 0) {
        mc_check_set(MC_SYMBOLS, MC_WARN,
                     "exports %d symbol%s besides %s: %s (build with -fvisibility=hidden)", n,
                     n == 1 ? "" : "s", PAYD_ENTRY_SYMBOL, extra);
    } else {
        mc_check_set(MC_SYMBOLS, MC_PASS, "only %s is exported", PAYD_ENTRY_SYMBOL);
    }
}

/* Capability rules, as the loader applies them; every mismatch, not only
 * the first, goes into `out`. */
static void check_caps(const payd_module *d, const payd_gateway_ops *g, int kind)
{
    if (kind != PAYD_KIND_GATEWAY) {
        mc_check_set(MC_ABI_CAPS, MC_PASS, "a notifier: notify is %s",
                     d->notifier ? "the one operation" : "missing");
        return;
    }
    static const struct {
        uint64_t bit;
        const char *cap;
        size_t fn[3];
        const char *names;
    } rules[] = {
        {PAYD_CAP_CAPTURE_LATER, "capture_later",
         {offsetof(payd_gateway_ops, capture), offsetof(payd_gateway_ops, cancel), 0}, "capture and cancel"},
        {PAYD_CAP_PARTIAL_CAPTURE, "partial_capture", {offsetof(payd_gateway_ops, capture), 0, 0}, "capture"},
        {PAYD_CAP_REFUND, "refund", {offsetof(payd_gateway_ops, refund), 0, 0}, "refund"},
        {PAYD_CAP_PARTIAL_REFUND, "partial_refund", {offsetof(payd_gateway_ops, refund), 0, 0}, "refund"},
        {PAYD_CAP_WEBHOOKS, "webhooks", {offsetof(payd_gateway_ops, webhook), 0, 0}, "webhook"},
        {PAYD_CAP_SAVED_METHODS, "saved_methods",
         {offsetof(payd_gateway_ops, save_method), offsetof(payd_gateway_ops, delete_method),
          offsetof(payd_gateway_ops, list_methods)},
         "save_method, delete_method and list_methods"},
        {PAYD_CAP_CANCEL, "cancel", {offsetof(payd_gateway_ops, cancel), 0, 0}, "cancel"},
        {PAYD_CAP_PAGES, "pages", {offsetof(payd_gateway_ops, page), 0, 0}, "page"},
        {PAYD_CAP_CONFIRM, "confirm", {offsetof(payd_gateway_ops, confirm), 0, 0}, "confirm"},
    };
    char bad[400] = "";
    size_t used = 0;
    if (!g->create || !g->retrieve)
        used += (size_t)snprintf(bad, sizeof bad, "create and retrieve are required");
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!(d->caps & rules[i].bit)) continue;
        int missing = 0;
        for (int k = 0; k < 3 && rules[i].fn[k]; k++) {
            void *fn;
            memcpy(&fn, (const char *)g + rules[i].fn[k], sizeof fn);
            missing |= fn == NULL;
        }
        if (missing && used < sizeof bad)
            used += (size_t)snprintf(bad + used, sizeof bad - used, "%scapability %s needs %s",
                                     used ? "; " : "", rules[i].cap, rules[i].names);
    }
    if (bad[0]) {
        mc_check_set(MC_ABI_CAPS, MC_FAIL, "%s", bad);
        return;
    }
    const char *names[16];
    size_t n = 0;
    modules_caps_names(d->caps, names, &n, 16);
    char list[300] = "";
    used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    mc_check_set(MC_ABI_CAPS, MC_PASS, "capabilities: %s", n ? list : "none");
}

/*
 * Copies an ops table the way the loader does: the module's struct_size
 * says how much it knows; the rest reads as absent. Returns the size the
 * module declared.
 */
static uint32_t copy_ops(void *dst, size_t dst_size, const void *src)
{
    memset(dst, 0, dst_size);
    if (!src) return 0;
    uint32_t n;
    memcpy(&n, src, sizeof n);
    memcpy(dst, src, n < dst_size ? n : dst_size);
    return n;
}

int mc_abi_inspect(mc_ctx *c)
{
    check_symbols(c);
    /* A file that does not load (a missing library, an undefined symbol)
     * or has no entry symbol is the loader's to report, under `load`. */
    mc_handle = dlopen(c->module_path, RTLD_NOW | RTLD_LOCAL);
    if (!mc_handle) return -1;
    payd_entry_fn entry = (payd_entry_fn)(uintptr_t)dlsym(mc_handle, PAYD_ENTRY_SYMBOL);
    if (!entry) return -1;
    const payd_module *d = entry();
    if (!d) {
        mc_check_set(MC_ABI_STRUCT_SIZE, MC_FAIL, "%s() returned NULL", PAYD_ENTRY_SYMBOL);
        return -1;
    }
    if (d->abi_major != PAYD_ABI_MAJOR) {
        mc_check_set(MC_ABI_MAJOR, MC_FAIL, "built for ABI %u.%u; this host speaks ABI %d.x",
                     d->abi_major, d->abi_minor, PAYD_ABI_MAJOR);
        return -1; /* nothing else in it can be trusted to mean the same */
    }
    mc_check_set(MC_ABI_MAJOR, MC_PASS, "built for ABI %u.%u; host %d.%d", d->abi_major, d->abi_minor,
                 PAYD_ABI_MAJOR, PAYD_ABI_MINOR);
    if (d->struct_size < MC_MODULE_V1_0_SIZE) {
        mc_check_set(MC_ABI_STRUCT_SIZE, MC_FAIL,
                     "descriptor struct_size %u is smaller than the v1.0 size %zu", d->struct_size,
                     (size_t)MC_MODULE_V1_0_SIZE);
        return -1;
    }

    if (d->kind != (uint32_t)c->kind)
        mc_check_set(MC_ABI_KIND, MC_FAIL, "module %s is a %s, the section [%s] wants a %s",
                     d->name ? d->name : "?",
                     d->kind == PAYD_KIND_GATEWAY   ? "gateway"
                     : d->kind == PAYD_KIND_NOTIFIER ? "notifier"
                                                     : "module of unknown kind",
                     c->o->section, c->kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier");
    else
        mc_check_set(MC_ABI_KIND, MC_PASS, "a %s, as the section says",
                     d->kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier");

    /* The ops table of the section's kind, sized as the module says. */
    char sizes[200];
    int bad_size = 0;
    payd_gateway_ops g;
    payd_notifier_ops nt;
    uint32_t n = 0;
    size_t need = 0, have = 0;
    if (c->kind == PAYD_KIND_GATEWAY) {
        n = copy_ops(&g, sizeof g, d->gateway);
        need = offsetof(payd_gateway_ops, retrieve) + sizeof g.retrieve;
        have = sizeof g;
    } else {
        n = copy_ops(&nt, sizeof nt, d->notifier);
        need = offsetof(payd_notifier_ops, notify) + sizeof nt.notify;
        have = sizeof nt;
    }
    if (n == 0)
        snprintf(sizes, sizeof sizes, "no %s ops table", c->kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier");
    else if (n < need)
        snprintf(sizes, sizeof sizes, "ops table struct_size %u does not even reach its required operations (%zu)",
                 n, need);
    else if (n < have)
        snprintf(sizes, sizeof sizes, "ops table %u of %zu bytes (an older minor: the rest is absent)", n, have);
    else
        snprintf(sizes, sizeof sizes, "ops table %u bytes", n);
    bad_size = n < need;
    mc_check_set(MC_ABI_STRUCT_SIZE, bad_size ? MC_FAIL : MC_PASS, "descriptor %u bytes (v1.0: %zu%s); %s",
                 d->struct_size, (size_t)MC_MODULE_V1_0_SIZE,
                 d->struct_size > sizeof(payd_module) ? ", from a newer minor: the host ignores the rest" : "",
                 sizes);
    if (c->kind == PAYD_KIND_GATEWAY) check_caps(d, &g, c->kind);
    else check_caps(d, NULL, c->kind);
    return 0;
}

void mc_abi_loader_errors(const config_errors *errs, size_t from)
{
    static const struct {
        const char *needle;
        int check;
    } map[] = {
        {"built for ABI", MC_ABI_MAJOR},
        {"struct_size", MC_ABI_STRUCT_SIZE},
        {"capability", MC_ABI_CAPS},
        {"are required", MC_ABI_CAPS},
        {"is required", MC_ABI_CAPS},
        {"not a gateway", MC_ABI_KIND},
        {"not a notifier", MC_ABI_KIND},
        {"has no gateway operations", MC_ABI_KIND},
        {"has no notifier operations", MC_ABI_KIND},
        {"does not export", MC_SYMBOLS},
        {"crashed in", MC_INIT_FINI},
        {"ended the process", MC_INIT_FINI},
        {"failed to initialize", MC_INIT_FINI},
    };
    for (size_t i = from; i < errs->count; i++) {
        mc_check_fail(MC_LOAD, "%s", errs->items[i]);
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (strstr(errs->items[i], map[k].needle)) {
                mc_check_fail(map[k].check, "%s", errs->items[i]);
                break;
            }
    }
}

void mc_abi_close(void)
{
#ifndef PAYD_KEEP_MODULES_MAPPED
    if (mc_handle) dlclose(mc_handle);
#endif
    mc_handle = NULL;
}
