/* Internal to the lexical index: its FTS5 ranking function. */
#ifndef RAGD_INDEX_LEXICAL_INT_H
#define RAGD_INDEX_LEXICAL_INT_H

#include <sqlite3.h>

/*
 * BM25's term-frequency saturation and length normalisation. On SciFact
 * (Porter stemming) 1.2 / 0.75 gave nDCG@10 0.6656 and Anserini's 0.9 / 0.4
 * 0.6611 against the published 0.665; on ADI the order was reversed by less.
 */
#define LEXICAL_BM25_K1 1.2
#define LEXICAL_BM25_B 0.75

/* Registers ragd_bm25(table, k1, b) on db; an SQLite result code. */
int lexical_bm25_register(sqlite3 *db);

#endif
