/* A parent and a child that both map libforkdemo.so: the parent runs `forkdemo parent SECS`,
 * forks and the child execs `forkdemo child SECS`, whose time goes into the library (built
 * without frame pointers: only its CFI unwinds it). Recorded with `perf record -p PARENT,CHILD`
 * started after the exec, perf synthesizes the child's FORK (PERF_RECORD_MISC_FORK_EXEC) and
 * does not give it the parent's maps; the fixture keeps a run where the parent's library lies
 * below the child's (make.sh retries until ASLR gives that). */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

double spin(double secs); /* libforkdemo.so */

int main(int argc, char **argv) {
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    if (argc > 1 && strcmp(argv[1], "parent") == 0) {
        pid_t child = fork();
        if (child == 0) {
            char self[4096];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            if (n <= 0)
                _exit(127);
            self[n] = 0;
            execl(self, argv[0], "child", argc > 2 ? argv[2] : "1.0", (char *)0);
            _exit(127);
        }
        spin(0.0);
        waitpid(child, 0, 0);
        return 0;
    }
    return spin(secs) < 0;
}
