/* Wine 8.0 lacks bcryptprimitives.dll, which Rust's std (1.78+) imports for ProcessPrng, its
 * source of random bytes on Windows. This stub exists only to run the Windows test binaries
 * under Wine (ci/wine-env); real Windows 10+ ships the DLL. ProcessPrng is documented to
 * always succeed; RtlGenRandom (advapi32's SystemFunction036) is Wine's CSPRNG. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
