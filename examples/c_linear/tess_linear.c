/*
 * tess_linear.c: one mini-batch of the TESS learning rule for a network of linear
 * spiking blocks, in plain C99 (libc and libm only). A template to copy: the rule
 * is written step by step next to its equations (TESS_RULE.md sections 2-7).
 *
 * It reads a case written by `tess vectors export DIR` (CASE/case.txt and the raw
 * little-endian CASE/inputs/NAME.bin arrays), runs T steps, takes one optimiser
 * step and writes every result as OUT/NAME.bin, so that
 * `tess vectors check DIR RESULTS_DIR` can judge it (OUT = RESULTS_DIR/<case>).
 *
 *   cc -std=c99 -O2 -Wall -Wextra -o tess_linear tess_linear.c -lm
 *   cc -std=c99 -O2 -Wall -Wextra -DTESS_FLOAT32 -o tess_linear32 tess_linear.c -lm
 *   ./tess_linear DIR/linear-block RESULTS_DIR/linear-block
 *
 * Supported: linear blocks (optional bias), soft or hard reset, triangle or
 * fast-sigmoid psi, both traces, both profiles, LSG learning signals, the linear
 * readout, Adam or SGD with momentum. Not supported (the case is refused): conv
 * blocks, pooling, weight standardisation, dropout.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h> /* exp, log, fabs, sqrt, pow follow the type of `real` */

#ifdef TESS_FLOAT32
typedef float real;
#define REAL_NAME "float32"
#else
typedef double real;
#define REAL_NAME "float64"
#endif

#define MAX_BLOCKS 16
#define MAX_PARAMS (2 * MAX_BLOCKS + 2)

/* ------------------------------------------------------------------ helpers */
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tess_linear: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *zalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) die("out of memory");
    return p;
}

/* case.txt: one "key value" pair per line; '#' starts a comment line. */
static char keys[512][64], vals[512][64];
static int n_keys;

static void read_case(const char *dir) {
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        if (n_keys == 512) die("%s: too many lines", path);
        if (sscanf(line, "%63s %63s", keys[n_keys], vals[n_keys]) == 2) n_keys++;
    }
    fclose(f);
}

static const char *get(const char *key) {
    for (int i = 0; i < n_keys; i++)
        if (strcmp(keys[i], key) == 0) return vals[i];
    die("case.txt has no key %s", key);
    return NULL;
}
static int geti(const char *key) { return atoi(get(key)); }
static real getr(const char *key) { return (real)strtod(get(key), NULL); }
static const char *getb(int block, const char *what) { /* block.<i>.<what> */
    static char key[64];
    snprintf(key, sizeof key, "block.%d.%s", block, what);
    return get(key);
}

/* An array name built like printf, e.g. nm("params.%s", p); valid until the next call. */
static const char *nm(const char *fmt, ...) {
    static char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof buf) die("array name too long: %s", fmt);
    return buf;
}

/* Raw arrays: NAME.bin holds the values only, little-endian, C order. */
static void *load(const char *dir, const char *name, size_t n, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/inputs/%s.bin", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    void *p = zalloc(n, size);
    if (fread(p, size, n, f) != n || fgetc(f) != EOF) die("%s: expected %zu values of %zu bytes", path, n, size);
    fclose(f);
    return p;
}
static real *load_real(const char *dir, const char *name, size_t n) { return load(dir, name, n, sizeof(real)); }

static void save(const char *dir, const char *name, const void *p, size_t n, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, size, n, f) != n || fclose(f) != 0) die("cannot write %s", path);
}
static void save_real(const char *dir, const char *name, const real *p, size_t n) {
    save(dir, name, p, n, sizeof(real));
}

/* ------------------------------------------------------------------ the network */
typedef struct {
    int n_in, n;           /* inputs and neurons */
    int has_bias, k;       /* bias?  LSG pool size k (the n outputs averaged to length k) */
    int fast_sigmoid;      /* psi: 1 fast sigmoid, 0 triangle */
    real r;                /* soft-reset amount */
    real *W, *b;           /* weight (n, n_in), bias (n) */
    real *B;               /* LSG basis (n_classes, k): B[c][j] = sign(sin(omega_c * j)), entries -1, 0, 1 */
    real *u, *o, *q, *h;   /* state: (batch, n); q: (batch, n_in) */
    real *psi, *h_tilde, *m; /* this step: surrogate psi[t], non-causal trace h~[t-1], learning signal m[t] */
    real *dWc, *dWn, *db;  /* window sums: causal term, non-causal term, bias */
    real *G;               /* the weight's gradient dWc + dWn */
    real *rec[6];          /* records (T, batch, .): u, o, psi, q, h, m */
} Block;

typedef struct {
    char name[48];
    real *p, *g, *m1, *m2; /* value, gradient, Adam m and v (or the SGD buffer in m1) */
    size_t n;
} Param;

static void add_param(Param *par, int *np, const char *name, real *grad, size_t n) {
    if (*np == MAX_PARAMS || strlen(name) >= sizeof par->name) die("too many parameters");
    strcpy(par[*np].name, name);
    par[*np].g = grad;
    par[(*np)++].n = n;
}

static const char *REC_NAMES[6] = {"u", "o", "psi", "q", "h", "m"};

/* Triangle: psi = 0.3 max(0, 1 - |u - theta|); fast sigmoid: psi = 1 / (100 |u - theta| + 1)^2. */
static real psi_of(const Block *bk, real u, real theta) {
    real d = fabs(u - theta);
    if (bk->fast_sigmoid) return 1 / ((100 * d + 1) * (100 * d + 1));
    return d < 1 ? (real)0.3 * (1 - d) : 0;
}

/* Softmax over n values, in place. */
static void softmax(real *z, int n) {
    real mx = z[0], s = 0;
    for (int c = 1; c < n; c++) mx = z[c] > mx ? z[c] : mx;
    for (int c = 0; c < n; c++) s += (z[c] = exp(z[c] - mx));
    for (int c = 0; c < n; c++) z[c] /= s;
}

/*
 * LSG (section 4) of one linear block at one step: a = AdaptiveAvgPool_k(o), z = B~ a
 * with B~ = B / k, L = mean_batch CE(softmax(z / tau), y), m = dL/do. In closed form
 * dL/da = B~^T (softmax(z / tau) - onehot(y)) / (tau batch), pulled back through the
 * pool. Bin i of the adaptive pool averages floor(i n / k) <= j < ceil((i + 1) n / k)
 * (bins overlap when k does not divide n). Returns L; writes bk->m.
 */
static real lsg(Block *bk, const int64_t *y, int batch, int n_classes, real tau) {
    int n = bk->n, k = bk->k;
    real *a = zalloc(k, sizeof(real)), *ga = zalloc(k, sizeof(real)), *z = zalloc(n_classes, sizeof(real));
    real loss = 0;
    memset(bk->m, 0, sizeof(real) * batch * n);
    for (int s = 0; s < batch; s++) {
        const real *o = bk->o + s * n;
        for (int i = 0; i < k; i++) {
            int lo = i * n / k, hi = ((i + 1) * n + k - 1) / k;
            a[i] = 0;
            for (int j = lo; j < hi; j++) a[i] += o[j];
            a[i] /= hi - lo;
        }
        for (int c = 0; c < n_classes; c++) {
            z[c] = 0;
            for (int i = 0; i < k; i++) z[c] += bk->B[c * k + i] / k * a[i];
            z[c] /= tau;
        }
        softmax(z, n_classes);
        loss -= log(z[y[s]]);
        z[y[s]] -= 1; /* z is now softmax - onehot */
        for (int i = 0; i < k; i++) {
            ga[i] = 0;
            for (int c = 0; c < n_classes; c++) ga[i] += z[c] / (tau * batch) * (bk->B[c * k + i] / k);
            int lo = i * n / k, hi = ((i + 1) * n + k - 1) / k;
            for (int j = lo; j < hi; j++) bk->m[s * n + j] += ga[i] / (hi - lo);
        }
    }
    free(a);
    free(ga);
    free(z);
    return loss / batch;
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage: tess_linear CASE_DIR OUT_DIR");
    const char *dir = argv[1], *out = argv[2];
    uint16_t one = 1;
    if (*(uint8_t *)&one != 1) die("this host is big-endian: byte-swap the little-endian .bin files first");
    read_case(dir);
    if (strcmp(get("dtype"), REAL_NAME) != 0)
        die("the case is %s but this build computes in %s (build with%s -DTESS_FLOAT32)", get("dtype"), REAL_NAME,
            strcmp(REAL_NAME, "float32") == 0 ? "out" : "");
    if (strcmp(get("family"), "linear") != 0 || strcmp(get("learning_signal"), "lsg") != 0)
        die("case %s needs more than linear blocks with LSG signals", get("case"));

    const int T = geti("T"), batch = geti("batch"), start = geti("window_start"), C = geti("n_classes");
    const int L = geti("n_blocks"), n_in0 = geti("input_size");
    const real theta = getr("theta"), leak = getr("leak"), tau = getr("temperature");
    const real lam_post = getr("lambda_post"), lam_pre = getr("lambda_pre");
    const real alpha_post = getr("alpha_post"), alpha_pre = getr("alpha_pre");
    const int hard = strcmp(get("reset"), "hard") == 0, paper = strcmp(get("profile"), "paper") == 0;
    if (L > MAX_BLOCKS) die("more than %d blocks", MAX_BLOCKS);

    /* Parameters in the canonical order: blocks.<i>.weight, blocks.<i>.bias, readout.weight, readout.bias. */
    Block blk[MAX_BLOCKS];
    Param par[MAX_PARAMS];
    int np = 0;
    memset(blk, 0, sizeof blk);
    memset(par, 0, sizeof par);
    for (int l = 0; l < L; l++) {
        Block *bk = &blk[l];
        if (strcmp(getb(l, "kind"), "linear") || atoi(getb(l, "weight_std")) || strtod(getb(l, "dropout"), NULL))
            die("block %d is not a plain linear block", l);
        bk->n_in = atoi(getb(l, "inputs"));
        bk->n = atoi(getb(l, "features"));
        bk->has_bias = atoi(getb(l, "bias"));
        bk->k = atoi(getb(l, "lsg_k"));
        bk->fast_sigmoid = strcmp(getb(l, "psi"), "fast_sigmoid") == 0;
        bk->r = (real)strtod(getb(l, "reset_amount"), NULL);
        bk->B = load_real(dir, nm("lsg_basis.%d", l), (size_t)C * bk->k);
        bk->u = zalloc(batch * bk->n, sizeof(real));
        bk->o = zalloc(batch * bk->n, sizeof(real));
        bk->h = zalloc(batch * bk->n, sizeof(real));
        bk->psi = zalloc(batch * bk->n, sizeof(real));
        bk->h_tilde = zalloc(batch * bk->n, sizeof(real));
        bk->m = zalloc(batch * bk->n, sizeof(real));
        bk->q = zalloc(batch * bk->n_in, sizeof(real));
        bk->dWc = zalloc(bk->n * bk->n_in, sizeof(real));
        bk->dWn = zalloc(bk->n * bk->n_in, sizeof(real));
        bk->db = zalloc(bk->n, sizeof(real));
        for (int r = 0; r < 6; r++) bk->rec[r] = zalloc((size_t)T * batch * (r == 3 ? bk->n_in : bk->n), sizeof(real));
        bk->G = zalloc(bk->n * bk->n_in, sizeof(real));
        add_param(par, &np, nm("blocks.%d.weight", l), bk->G, (size_t)bk->n * bk->n_in);
        if (bk->has_bias) add_param(par, &np, nm("blocks.%d.bias", l), bk->db, (size_t)bk->n);
    }
    const int F = blk[L - 1].n, ro_bias = geti("readout_bias");
    real *dWr = zalloc(C * F, sizeof(real)), *dbr = zalloc(C, sizeof(real));
    add_param(par, &np, "readout.weight", dWr, (size_t)C * F);
    if (ro_bias) add_param(par, &np, "readout.bias", dbr, (size_t)C);
    const int adam = strcmp(get("optimizer"), "adam") == 0;
    for (int i = 0; i < np; i++) {
        par[i].p = load_real(dir, nm("params.%s", par[i].name), par[i].n);
        par[i].m1 = load_real(dir, nm(adam ? "opt.m.%s" : "opt.buf.%s", par[i].name), par[i].n);
        if (adam) par[i].m2 = load_real(dir, nm("opt.v.%s", par[i].name), par[i].n);
    }
    for (int l = 0, i = 0; l < L; l++) { /* point each block at its loaded weight and bias */
        blk[l].W = par[i++].p;
        blk[l].b = blk[l].has_bias ? par[i++].p : NULL;
    }
    real *Wr = par[np - 1 - ro_bias].p, *br = ro_bias ? par[np - 1].p : NULL;

    real *x = load_real(dir, "x", (size_t)batch * T * n_in0); /* (batch, T, n_in0) */
    int64_t *y = load(dir, "y", batch, sizeof(int64_t));
    real *logits = zalloc((size_t)T * batch * C, sizeof(real)), *summed = zalloc(batch * C, sizeof(real));
    real *lsg_loss = zalloc((size_t)T * L, sizeof(real)), *err = zalloc(C, sizeof(real));
    int widest = n_in0;
    for (int l = 0; l < L; l++) widest = blk[l].n > widest ? blk[l].n : widest;
    real *inp = zalloc(batch * widest, sizeof(real));

    for (int t = 0; t < T; t++) {
        const int learn = t >= start; /* the learning window: the last n_learn steps */
        for (int s = 0; s < batch; s++)
            for (int j = 0; j < n_in0; j++) inp[s * n_in0 + j] = x[((size_t)s * T + t) * n_in0 + j];
        for (int l = 0; l < L; l++) {
            Block *bk = &blk[l];
            const int n = bk->n, n_in = bk->n_in;
            for (int s = 0; s < batch; s++) {
                for (int j = 0; j < n; j++) {
                    const int i = s * n + j;
                    real cur = bk->has_bias ? bk->b[j] : 0; /* I[t] = W x[t] + b */
                    for (int c = 0; c < n_in; c++) cur += bk->W[j * n_in + c] * inp[s * n_in + c];
                    /* non-causal trace h~[t-1]: lambda_post h[t-1] (paper) or h[t-1] (reference-code) */
                    bk->h_tilde[i] = paper ? lam_post * bk->h[i] : bk->h[i];
                    /* LIF: u[t] = leak (u[t-1] - r o[t-1]) + I[t]   or, hard reset, leak u[t-1] (1 - o[t-1]) + I[t] */
                    real u = hard ? leak * bk->u[i] * (1 - bk->o[i]) + cur : leak * (bk->u[i] - bk->r * bk->o[i]) + cur;
                    bk->u[i] = u;
                    bk->o[i] = (u > theta) ? 1 : 0; /* strict inequality */
                    bk->psi[i] = psi_of(bk, u, theta);
                    /* postsynaptic trace h[t] = lambda_post h[t-1] + psi[t] */
                    bk->h[i] = lam_post * bk->h[i] + bk->psi[i];
                }
            }
            /* presynaptic trace, one per input element: q[t] = lambda_pre q[t-1] + x[t] */
            for (int i = 0; i < batch * n_in; i++) bk->q[i] = lam_pre * bk->q[i] + inp[i];
            if (learn) {
                lsg_loss[t * L + l] = lsg(bk, y, batch, C, tau);
                /* G[t] = alpha_pre (m psi) (x) q[t] + alpha_post (m h~[t-1]) (x) x[t], summed over the batch */
                for (int j = 0; j < n; j++) {
                    for (int c = 0; c < n_in; c++) {
                        real gc = 0, gn = 0;
                        for (int s = 0; s < batch; s++) {
                            const real mi = bk->m[s * n + j];
                            gc += mi * bk->psi[s * n + j] * bk->q[s * n_in + c];
                            gn += mi * bk->h_tilde[s * n + j] * inp[s * n_in + c];
                        }
                        bk->dWc[j * n_in + c] += alpha_pre * gc;
                        bk->dWn[j * n_in + c] += alpha_post * gn;
                    }
                    for (int s = 0; s < batch; s++) /* bias: sum of m psi */
                        bk->db[j] += bk->m[s * n + j] * bk->psi[s * n + j];
                }
            } else {
                memset(bk->m, 0, sizeof(real) * batch * n);
            }
            const real *now[6] = {bk->u, bk->o, bk->psi, bk->q, bk->h, bk->m};
            for (int r = 0; r < 6; r++) { /* record this step */
                const size_t len = (size_t)batch * (r == 3 ? n_in : n);
                memcpy(bk->rec[r] + (size_t)t * len, now[r], sizeof(real) * len);
            }
            memcpy(inp, bk->o, sizeof(real) * batch * n); /* the next block's input */
        }
        /* Readout: logits[t] = W_r o_L[t] + b_r; trained by its own CE at each step of the window. */
        for (int s = 0; s < batch; s++) {
            real *z = logits + ((size_t)t * batch + s) * C;
            for (int c = 0; c < C; c++) {
                z[c] = br ? br[c] : 0;
                for (int j = 0; j < F; j++) z[c] += Wr[c * F + j] * inp[s * F + j];
                summed[s * C + c] += z[c];
            }
            if (!learn) continue;
            memcpy(err, z, sizeof(real) * C);
            softmax(err, C);
            err[y[s]] -= 1; /* dCE/dlogits = (softmax - onehot) / batch */
            for (int c = 0; c < C; c++) {
                for (int j = 0; j < F; j++) dWr[c * F + j] += err[c] / batch * inp[s * F + j];
                dbr[c] += err[c] / batch;
            }
        }
    }

    /* A block's weight gradient is the sum of both window-summed terms (no weight standardisation). */
    for (int l = 0; l < L; l++)
        for (int e = 0; e < blk[l].n * blk[l].n_in; e++) blk[l].G[e] = blk[l].dWc[e] + blk[l].dWn[e];

    /* One optimiser step (minimising), the step count shared by all parameters. Constants derived
     * from the hyperparameters are computed in double and rounded once: 1 - beta2 computed in float
     * is off by 1.3e-5 relative, more than the float32 tolerance of the optimiser moments. */
    const int64_t step = geti("opt_step") + 1;
    const double b1d = strtod(get("beta1"), NULL), b2d = strtod(get("beta2"), NULL);
    const real lr = getr("lr"), eps = getr("eps"), mu = getr("momentum"), wd = getr("weight_decay");
    const real b1 = (real)b1d, b2 = (real)b2d, c1 = (real)(1 - b1d), c2 = (real)(1 - b2d);
    const real bc1 = (real)(1 - pow(b1d, (double)step)), bc2 = (real)(1 - pow(b2d, (double)step));
    for (int i = 0; i < np; i++) {
        Param *P = &par[i];
        for (size_t e = 0; e < P->n; e++) {
            const real g = P->g[e] + wd * P->p[e];
            if (adam) { /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr m^ / (sqrt(v^) + eps) */
                P->m1[e] = b1 * P->m1[e] + c1 * g;
                P->m2[e] = b2 * P->m2[e] + c2 * g * g;
                const real mh = P->m1[e] / bc1, vh = P->m2[e] / bc2; /* bias-corrected moments */
                P->p[e] -= lr * mh / (sqrt(vh) + eps);
            } else { /* buf = mu buf + g; p -= lr buf */
                P->m1[e] = mu * P->m1[e] + g;
                P->p[e] -= lr * P->m1[e];
            }
        }
    }

    /* Loss and accuracy of the time-summed logits. */
    real loss = 0;
    int64_t n_correct = 0;
    for (int s = 0; s < batch; s++) {
        real *z = summed + s * C;
        int best = 0;
        for (int c = 1; c < C; c++) best = z[c] > z[best] ? c : best;
        n_correct += best == y[s];
        softmax(z, C);
        loss -= log(z[y[s]]) / batch;
    }

    /* Results, named as the case's expected/ arrays. */
    for (int l = 0; l < L; l++) {
        Block *bk = &blk[l];
        for (int r = 0; r < 6; r++) {
            save_real(out, nm("%s.%d", REC_NAMES[r], l), bk->rec[r], (size_t)T * batch * (r == 3 ? bk->n_in : bk->n));
        }
        save_real(out, nm("dw_causal.%d", l), bk->dWc, (size_t)bk->n * bk->n_in);
        save_real(out, nm("dw_noncausal.%d", l), bk->dWn, (size_t)bk->n * bk->n_in);
    }
    save_real(out, "logits", logits, (size_t)T * batch * C);
    save_real(out, "lsg_loss", lsg_loss, (size_t)T * L);
    save_real(out, "loss", &loss, 1);
    save(out, "n_correct", &n_correct, 1, sizeof n_correct);
    for (int i = 0; i < np; i++) {
        save_real(out, nm("grads.%s", par[i].name), par[i].g, par[i].n);
        save_real(out, nm("params.%s", par[i].name), par[i].p, par[i].n);
        save_real(out, nm(adam ? "opt.m.%s" : "opt.buf.%s", par[i].name), par[i].m1, par[i].n);
        if (adam) {
            save_real(out, nm("opt.v.%s", par[i].name), par[i].m2, par[i].n);
        }
    }
    save(out, "opt.step", &step, 1, sizeof step);
    return 0;
}
