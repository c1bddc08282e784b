package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// CA is the sandbox's certificate authority: it signs the serving and client
// certificates, and the API server trusts client certificates it signed.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertSpec says what one issued certificate is for.
type CertSpec struct {
	CommonName   string
	Organization []string // becomes the user's groups for a client certificate
	DNSNames     []string
	IPs          []net.IP
	Server       bool // serving certificate (else client)
}

// certValidity is long enough for any test run and short enough to stay a
// throwaway: the sandbox makes new certificates on every `up`.
const certValidity = 365 * 24 * time.Hour

// NewCA makes a CA and writes NAME.crt and NAME.key.
func NewCA(l Layout, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	crt, err := cert.NewSelfSignedCACert(cert.Config{CommonName: "strom-kube-sandbox-" + name}, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca := &CA{Cert: crt, Key: key}
	return ca, writeCertAndKey(l, name, crt, key)
}

// Issue signs a new key for spec and writes NAME.crt and NAME.key.
func (ca *CA) Issue(l Layout, name string, spec CertSpec) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("%s key: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return fmt.Errorf("%s serial: %w", name, err)
	}
	usage := x509.ExtKeyUsageClientAuth
	if spec.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", name, err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", name, err)
	}
	return writeCertAndKey(l, name, crt, key)
}

// WriteServiceAccountKeys makes the RSA key pair the API server signs
// service-account tokens with (and the controller-manager's token controller).
func WriteServiceAccountKeys(l Layout) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	priv, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	if err := keyutil.WriteKey(l.ServiceAccountKey(), priv); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("service-account public key: %w", err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return os.WriteFile(l.ServiceAccountPub(), pub, 0o644)
}

func writeCertAndKey(l Layout, name string, crt *x509.Certificate, key crypto.Signer) error {
	crtPEM, err := cert.EncodeCertificates(crt)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", name, err)
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("%s key: %w", name, err)
	}
	if err := cert.WriteCert(l.Cert(name), crtPEM); err != nil {
		return err
	}
	return keyutil.WriteKey(l.Key(name), keyPEM)
}
