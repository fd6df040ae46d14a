/*
 * Functions ragd code must not call, made into compile errors (after git's
 * banned.h). Each has a bounded or clearer replacement: sbuf_add and
 * snprintf for strcpy/strcat/sprintf, strtok_r or a struct str scanner for strtok.
 *
 * Include it last, after every system header, in .c files only: the macros
 * would otherwise break the system headers' own declarations. gmtime and
 * localtime are banned for their shared static result: use the _r forms.
 */
#ifndef RAGD_CORE_BANNED_H
#define RAGD_CORE_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef gets
#define gets(x) BANNED(gets)
#undef asctime
#define asctime(t) BANNED(asctime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)

#endif
